"""Benchmark: the whole failure-mining pass over ~1M synthetic traces vs a plain DuckDB scan.

Builds the traces table directly in DuckDB with SQL (three workflows, a few
percent of each failure class, realistic output variety: router confidences
with two decimals, tool calls with varied order ids and amounts), then times
(a) `SELECT count(*), sum(length(output)), ...` over the table and (b)
`mine_failures` over every day, in the same run, and prints calls per second
for both and their ratio. Target: mining within 20x of the scan.
Usage: python bench/mining.py [ROWS]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_release.contracts.package import StaticContract, ToolSpecLike  # noqa: E402
from prompt_release.mining.detectors import mine_failures  # noqa: E402
from prompt_release.warehouse import write_transaction  # noqa: E402

ROUTES = ["account_recovery", "billing", "technical", "shipping", "general"]
ORDER_ID = {"type": "string", "pattern": "^ORD-[0-9]{6}$"}
CONTRACTS = [
    StaticContract(
        "support_router:v1.5.2",
        "sha256:router",
        "json",
        {
            "type": "object",
            "required": ["route", "confidence"],
            "additionalProperties": False,
            "properties": {
                "route": {"type": "string", "enum": ROUTES},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    ),
    StaticContract(
        "order_agent:v2.0.0",
        "sha256:order",
        "text",
        None,
        (
            ToolSpecLike(
                "lookup_order",
                {"type": "object", "required": ["order_id"], "properties": {"order_id": ORDER_ID}},
                "low",
            ),
            ToolSpecLike(
                "issue_refund",
                {
                    "type": "object",
                    "required": ["order_id", "amount_usd", "reason"],
                    "properties": {
                        "order_id": ORDER_ID,
                        "amount_usd": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
                        "reason": {"enum": ["damaged", "late", "not_received", "other"]},
                    },
                },
                "high",
            ),
        ),
        {"issue_refund": {"requires_prior": ["lookup_order"], "max": {"amount_usd": 200}}},
    ),
    StaticContract("summarizer:v1.0.0", "sha256:summ", "text"),
]

TRACES_SQL = """
CREATE OR REPLACE TABLE traces AS
WITH base AS (
    SELECT i,
           (hash(i) % 10000) / 10000.0 AS r,
           (hash(i * 7 + 1) % 10000) / 10000.0 AS r2,
           ['support_router', 'order_agent', 'summarizer'][1 + (i % 3)] AS wf
    FROM range(?) t(i)
)
SELECT 'span' || i AS span_id, 'trace' || i AS trace_id, NULL::VARCHAR AS parent_span_id,
       TIMESTAMPTZ '2026-10-01 00:00:00+00' + to_seconds(i % 604800) AS ts,
       DATE '2026-10-01' + CAST(i % 7 AS INTEGER) AS day, 'record' AS ts_source,
       wf AS workflow, wf AS prompt_id,
       CASE wf WHEN 'support_router' THEN 'support_router:v1.5.2' WHEN 'order_agent' THEN 'order_agent:v2.0.0' ELSE 'summarizer:v1.0.0' END AS prompt_version,
       CASE wf WHEN 'support_router' THEN 'sha256:router' WHEN 'order_agent' THEN 'sha256:order' ELSE 'sha256:summ' END AS package_hash,
       'sim-1' AS model,
       CAST('[{"role":"system","content":"You are helpful."},{"role":"user","content":"customer message number ' || (i % 20000) || ' about order ORD-' || lpad(CAST(i % 999999 AS VARCHAR), 6, '0') || '"}]' AS JSON) AS input_messages,
       CAST('{"ticket":"message ' || (i % 20000) || '","customer_tier":"' || ['free','gold','pro'][1 + (i % 3)] || '"}' AS JSON) AS variables,
       CASE
         WHEN wf = 'support_router' AND r < 0.02 THEN 'This ticket should go to ' || ROUTES[1 + (i % 5)] || '.'
         WHEN wf = 'support_router' AND r < 0.03 THEN '{"route":"refunds","confidence":' || round(r2, 2) || '}'
         WHEN wf = 'support_router' AND r < 0.035 THEN '{"route":"billing","confidence":' || (1 + round(r2, 2)) || '}'
         WHEN wf = 'support_router' THEN '{"route":"' || ROUTES[1 + (i % 5)] || '","confidence":' || round(r2, 2) || '}'
         WHEN wf = 'order_agent' AND r < 0.02 THEN 'I can''t help with that.'
         WHEN wf = 'order_agent' AND r < 0.04 THEN 'Could you clarify which order you mean?'
         WHEN wf = 'order_agent' AND r < 0.50 THEN ''
         ELSE 'Summary of document ' || (i % 20000) || ': the customer reports a delay and asks for an update.'
       END AS output,
       CASE
         WHEN wf = 'order_agent' AND r >= 0.04 AND r < 0.30 THEN CAST('[{"name":"lookup_order","arguments":{"order_id":"ORD-' || lpad(CAST(i % 999999 AS VARCHAR), 6, '0') || '"}}]' AS JSON)
         WHEN wf = 'order_agent' AND r >= 0.30 AND r < 0.45 THEN CAST('[{"name":"lookup_order","arguments":{"order_id":"ORD-' || lpad(CAST(i % 999999 AS VARCHAR), 6, '0') || '"}},{"name":"issue_refund","arguments":{"order_id":"ORD-' || lpad(CAST(i % 999999 AS VARCHAR), 6, '0') || '","amount_usd":' || (1 + (i % 300)) || ',"reason":"late"}}]' AS JSON)
         WHEN wf = 'order_agent' AND r >= 0.45 AND r < 0.48 THEN CAST('[{"name":"issue_refund","arguments":{"order_id":"ORD-' || lpad(CAST(i % 999999 AS VARCHAR), 6, '0') || '","amount_usd":50,"reason":"late"}}]' AS JSON)
         WHEN wf = 'order_agent' AND r >= 0.48 AND r < 0.49 THEN CAST('[{"name":"cancel_order","arguments":{}}]' AS JSON)
         WHEN wf = 'order_agent' AND r >= 0.49 AND r < 0.50 THEN CAST('[{"name":"lookup_order","arguments":{"order_id":"' || (i % 999) || '"}}]' AS JSON)
       END AS tool_calls,
       'stop' AS finish_reason,
       CASE WHEN r2 < 0.01 THEN 'error' ELSE 'ok' END AS status,
       CASE WHEN r2 < 0.01 THEN 'timeout' END AS error_type,
       CASE WHEN r2 > 0.998 THEN 50000.0 ELSE 300 + 400 * r END AS latency_ms,
       100::BIGINT AS input_tokens, 20::BIGINT AS output_tokens,
       CASE WHEN r2 BETWEEN 0.5 AND 0.501 THEN 1.0 ELSE 0.001 + r / 1000 END AS cost_usd,
       's' || (i % 50000) AS session_id, 'u' || (i % 30000) AS user_id,
       CAST('{"tier":"' || ['free','gold','pro'][1 + (i % 3)] || '"}' AS JSON) AS segment,
       CASE WHEN r2 BETWEEN 0.1 AND 0.12 THEN -1.0 WHEN r2 BETWEEN 0.2 AND 0.3 THEN 1.0 END AS feedback,
       r2 BETWEEN 0.3 AND 0.31 AS escalated,
       CASE WHEN wf = 'support_router' AND r2 BETWEEN 0.4 AND 0.42 THEN CAST('{"route":"billing"}' AS JSON)
            WHEN wf = 'summarizer' AND r2 BETWEEN 0.4 AND 0.41 THEN CAST('"A shorter summary."' AS JSON) END AS correction,
       CASE WHEN r2 BETWEEN 0.6 AND 0.63 THEN 1 ELSE 0 END AS retries,
       r2 BETWEEN 0.7 AND 0.705 AS fallback,
       CAST('{}' AS JSON) AS attributes,
       'native' AS source_format, 'bench.jsonl' AS source_file, i AS source_line,
       'span' || i AS record_key, now() AS ingested_at
FROM base, (SELECT ['account_recovery', 'billing', 'technical', 'shipping', 'general'] AS ROUTES)
"""


NARROW_SCAN = "SELECT count(*), sum(length(output)) FROM traces"
# The reference: one plain pass over every column the detectors read, no JSON parsing.
FULL_SCAN = """
SELECT count(*), sum(length(output)), sum(length(CAST(tool_calls AS VARCHAR))),
       sum(length(CAST(input_messages AS VARCHAR))), sum(length(CAST(correction AS VARCHAR))),
       sum(latency_ms), sum(cost_usd), sum(retries), count(*) FILTER (WHERE fallback OR escalated),
       sum(feedback), count(DISTINCT status), count(DISTINCT workflow), count(DISTINCT day),
       count(DISTINCT package_hash), count(DISTINCT prompt_version), max(length(record_key || span_id || trace_id))
FROM traces
"""


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    folder = Path(__file__).resolve().parent / ".data"
    folder.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        path = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        with write_transaction(path) as con:
            con.execute(TRACES_SQL, [rows])
        print(f"built {rows:,} traces rows in {time.perf_counter() - started:.1f}s")

        con = duckdb.connect(str(path), read_only=True)
        con.execute(FULL_SCAN).fetchone()  # warm the file cache
        started = time.perf_counter()
        count = con.execute(NARROW_SCAN).fetchone()[0]
        narrow_s = time.perf_counter() - started
        started = time.perf_counter()
        con.execute(FULL_SCAN).fetchone()
        scan_s = time.perf_counter() - started
        con.close()

        started = time.perf_counter()
        summary = mine_failures(path, None, None, contracts=CONTRACTS)
        mine_s = time.perf_counter() - started

        print(
            f"narrow scan       : {narrow_s:8.3f}s  {count / narrow_s:>14,.0f} traces/s  (count(*), sum(length(output)))"
        )
        print(f"plain DuckDB scan : {scan_s:8.3f}s  {count / scan_s:>14,.0f} traces/s  (every column mining reads)")
        print(
            f"mining pass       : {mine_s:8.3f}s  {count / mine_s:>14,.0f} traces/s  "
            f"({summary.distinct_outputs_validated:,} distinct outputs and "
            f"{summary.distinct_tool_calls_validated:,} distinct tool-call situations validated in Python)"
        )
        print(
            f"ratio mining/scan : {mine_s / scan_s:8.1f}x  (target <= 20x; vs the narrow scan {mine_s / narrow_s:.0f}x)"
        )
        print(f"failures found    : {summary.failures:,}")
        for name, n in sorted(summary.failures_by_class.items()):
            print(f"  {name:<20} {n:>8,}")


if __name__ == "__main__":
    main()
