"""The DuckDB warehouse: one file, schema migrated by code, short-lived connections.

Use `write_transaction(path)` for every write (one transaction, then the file
is released) and `read_connection(path)` for reads. Both wait out a lock held
by another process with bounded exponential backoff. Analysts use
`analyst_connection()`, which reads the snapshot republished after every
commit (`analyst_path`, `publish_snapshot`) and so never blocks a writer.
"""

from prompt_release.warehouse.connection import query_frame, read_connection, warehouse_exists, write_transaction
from prompt_release.warehouse.lake import Scope, ScopeMiss, redo_on_conflict
from prompt_release.warehouse.migrate import SCHEMA_VERSION, current_version
from prompt_release.warehouse.snapshot import analyst_connection, analyst_path, publish_snapshot

__all__ = [
    "query_frame",
    "SCHEMA_VERSION",
    "Scope",
    "ScopeMiss",
    "analyst_connection",
    "analyst_path",
    "current_version",
    "publish_snapshot",
    "read_connection",
    "redo_on_conflict",
    "warehouse_exists",
    "write_transaction",
]
