"""The sample world: a deterministic production history with known failures, and canary traffic.

`generator` writes days of traces for the sample registry's three prompts
(native JSONL, OTLP GenAI, OpenInference) with injected failures and a ground
truth file; `content` holds the sample tickets, orders and documents;
`traffic` serves requests through the runtime client against the simulator
for a canary; `commands` is `prompt-release generate-traces`. Only the demo,
the tests and the benchmarks use it: no product module imports it.
"""
