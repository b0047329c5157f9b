"""Output contracts: what a prompt package promises about its answers, and the checks that hold it to that.

`checks` parses and judges an output (JSON, schema, tool calls, tool policy,
expectations) the way the production parser would; mining, golden datasets,
the registry and the backtest all judge through it, so one answer gets one
verdict everywhere. `package` is the contract shape those checks read.
"""
