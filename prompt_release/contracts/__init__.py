"""Output-contract checks: how an output is judged against its package's contract, as production would."""
