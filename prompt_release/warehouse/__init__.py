"""The DuckDB warehouse: one file, schema migrated by code, short-lived connections.

Use `write_transaction(path)` for every write (one transaction, then the file
is released) and `read_connection(path)` for reads. Both wait out a lock held
by another process with bounded exponential backoff.
"""

from prompt_release.warehouse.connection import read_connection, write_transaction
from prompt_release.warehouse.migrate import SCHEMA_VERSION, current_version

__all__ = ["SCHEMA_VERSION", "current_version", "read_connection", "write_transaction"]
