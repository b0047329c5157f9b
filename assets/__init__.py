"""Dagster assets and asset checks: thin glue over `prompt_release`."""
