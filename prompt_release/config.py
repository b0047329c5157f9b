"""Every environment variable the core reads, in one place, each with its default and meaning.

Every setting has one resolution order: an explicit argument (a CLI flag, a
Dagster resource field, a keyword argument) wins, then the environment
variable, then the default. Locations (warehouse, registry, landing) have one
more step before the default: the project's state file `.prompt_release/config`
(written by `make demo`, so the CLI and `make ui` run in the project folder use
the demo's warehouse and registry). The README's "Configuration" table lists the
same variables; nothing else in `prompt_release` (nor the Dagster package,
which binds its resources to these names) reads the environment for a setting.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

STATE_DIR = Path(".prompt_release")

ENV_CONFIG = "PROMPT_RELEASE_CONFIG"
# The keys the state file may set, each the location a flag or variable would otherwise give.
CONFIG_KEYS = ("warehouse", "registry", "landing")


class ConfigFileError(ValueError):
    """The state file cannot be read; the message names the file and the setting.

    Not a `UserError` (config sits below errors in the layers); the CLI prints it the same way.
    """


ENV_WAREHOUSE = "PROMPT_RELEASE_WAREHOUSE"
ENV_REGISTRY = "PROMPT_RELEASE_REGISTRY"
ENV_LANDING = "PROMPT_RELEASE_LANDING"
ENV_LOCK_TIMEOUT = "PROMPT_RELEASE_LOCK_TIMEOUT"
ENV_ANALYST_SNAPSHOT = "PROMPT_RELEASE_ANALYST_SNAPSHOT"
ENV_INGEST_MEMORY_LIMIT = "PROMPT_RELEASE_INGEST_MEMORY_LIMIT"
ENV_INGEST_CHUNK_BYTES = "PROMPT_RELEASE_INGEST_CHUNK_BYTES"
ENV_ACTOR = "PROMPT_RELEASE_ACTOR"
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_API_KEY = "OPENAI_API_KEY"
ENV_CONCURRENCY = "PROMPT_RELEASE_CONCURRENCY"
ENV_START_DATE = "PROMPT_RELEASE_START_DATE"
ENV_MAX_REJECT_RATE = "PROMPT_RELEASE_MAX_REJECT_RATE"

DEFAULT_LOCK_TIMEOUT_S = 60.0
DEFAULT_INGEST_MEMORY_LIMIT = "512MB"
DEFAULT_INGEST_CHUNK_BYTES = 64 * 1024 * 1024
_OFF = {"0", "false", "no", "off"}


def _text(explicit: str | None, env: str) -> str | None:
    if explicit:
        return explicit
    value = os.environ.get(env)
    return value or None


def _number(explicit: float | None, env: str, default: float) -> float:
    if explicit is not None:
        return explicit
    value = os.environ.get(env)
    return float(value) if value else default


def config_file() -> Path:
    """The project's state file (env PROMPT_RELEASE_CONFIG, default `.prompt_release/config`)."""
    return Path(os.environ.get(ENV_CONFIG) or STATE_DIR / "config")


def read_config_file(path: Path | None = None) -> dict[str, str]:
    """The locations the state file sets (none when it is absent); a bad file is a `ConfigFileError`."""
    path = path or config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(f"{path}: not TOML: {exc}") from None
    for key, value in values.items():
        if key not in CONFIG_KEYS:
            raise ConfigFileError(f"{path}: unknown setting {key!r} (known: {', '.join(CONFIG_KEYS)})")
        if not isinstance(value, str) or not value:
            raise ConfigFileError(f"{path}: setting {key!r} must be a non-empty path string")
    return values


def write_config_file(path: Path, **locations: str | os.PathLike) -> Path:
    """Write the state file: absolute paths, so a run from any process resolves the same files."""
    unknown = set(locations) - set(CONFIG_KEYS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    lines = [
        "# Written by `make demo`. Order: --flag, then PROMPT_RELEASE_* variable, then this file, then the default.",
        "# Delete this file to go back to the defaults.",
    ]
    # TOML basic strings escape backslashes and quotes as JSON does.
    # a lake URI (s3://, file://) stays as written: a Path would fold it into a local name
    lines += [
        f"{key} = {json.dumps(str(value) if '://' in str(value) else str(Path(value).resolve()))}"
        for key, value in locations.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _pick(explicit: str | os.PathLike | None, env: str, key: str, default: Path) -> Path:
    if explicit:
        return Path(explicit)
    value = os.environ.get(env) or read_config_file().get(key)
    return Path(value) if value else default


def warehouse_path(explicit: str | os.PathLike | None = None) -> Path:
    """PROMPT_RELEASE_WAREHOUSE: the DuckDB warehouse file (default .prompt_release/warehouse.duckdb)."""
    return _pick(explicit, ENV_WAREHOUSE, "warehouse", STATE_DIR / "warehouse.duckdb")


# The standard AWS variables object_store (delta-rs) understands; read at use,
# handed to delta-rs as storage options, never stored or logged.
_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ALLOW_HTTP",
    "AWS_CONDITIONAL_PUT",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
    "AWS_S3_LOCKING_PROVIDER",
    "AWS_PROFILE",
    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
)
_LAKE_HELP = (
    "use a DuckDB file (*.duckdb), a lake folder (ending in / or .lake), file:///absolute/folder or s3://bucket/prefix"
)


@dataclass(frozen=True)
class LakeLocation:
    """A Delta Lake warehouse root: `file:///abs/folder` or `s3://bucket/prefix` (no trailing /)."""

    uri: str
    setting: str  # the flag or variable it came from, for error messages

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def table_uri(self, table: str) -> str:
        return f"{self.uri}/{table}"

    def storage_options(self) -> dict[str, str]:
        if not self.is_s3:
            return {}
        options = {name: os.environ[name] for name in _AWS_VARIABLES if os.environ.get(name)}
        if "AWS_REGION" not in options:
            options["AWS_REGION"] = options.get("AWS_DEFAULT_REGION", "us-east-1")
        endpoint = options.get("AWS_ENDPOINT_URL_S3") or options.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["AWS_ENDPOINT_URL"] = endpoint
            if endpoint.startswith("http://"):
                options.setdefault("AWS_ALLOW_HTTP", "true")
        # fail in seconds, not after object_store's default minutes of retries,
        # when the store is down: the caller gets one line and exit 2
        options.setdefault("timeout", os.environ.get(ENV_LAKE_TIMEOUT, "30s"))
        options.setdefault("connect_timeout", "5s")
        options.setdefault("max_retries", "2")
        options.setdefault("retry_timeout", "15s")
        return options

    def __str__(self) -> str:
        return self.uri


ENV_LAKE_TIMEOUT = "PROMPT_RELEASE_LAKE_TIMEOUT"


class WarehouseSettingError(ValueError):
    """The warehouse setting names no usable location (the warehouse layer words it as a UserError;
    config sits below errors in the layering, so it cannot raise one itself)."""

    def __init__(self, message: str, setting: str) -> None:
        self.setting = setting
        super().__init__(message)


def _warehouse_raw(explicit: str | os.PathLike | None) -> tuple[str, str]:
    """The warehouse setting as written, and where it came from (for error messages)."""
    raw = os.fspath(explicit) if explicit else os.environ.get(ENV_WAREHOUSE) or read_config_file().get("warehouse")
    return raw or "", warehouse_source(explicit)


def lake_location(explicit: str | os.PathLike | None = None) -> LakeLocation | None:
    """The Delta Lake root the warehouse setting names, or None for a DuckDB file.

    One setting picks the backend: `--warehouse` / PROMPT_RELEASE_WAREHOUSE holding
    `s3://bucket/prefix`, `file:///folder`, or a folder ending in `/` or `.lake`
    is a lake; anything else is a DuckDB file. A URI of another kind raises
    WarehouseSettingError naming the setting.
    """
    raw, setting = _warehouse_raw(explicit)
    if not raw:
        return None
    text = raw.strip()
    for folded in ("s3:/", "file:/"):  # a URI that went through pathlib.Path lost a slash
        if text.startswith(folded) and not text.startswith(folded + "/"):
            text = folded + "/" + text[len(folded) :]
    scheme = urlparse(text).scheme if "://" in text else ""
    if text.startswith(("md:", "motherduck:")) or (scheme and scheme not in ("s3", "file")):
        raise WarehouseSettingError(f"unsupported warehouse location {raw!r}; {_LAKE_HELP}", setting)
    if scheme == "s3":
        parsed = urlparse(text)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not bucket or not all(c.isalnum() or c in "-." for c in bucket):
            raise WarehouseSettingError(f"no valid bucket in {raw!r}; {_LAKE_HELP}", setting)
        return LakeLocation(f"s3://{bucket}" + (f"/{prefix}" if prefix else ""), setting)
    if scheme == "file":
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise WarehouseSettingError(f"a file URI needs an absolute path (file:///folder), got {raw!r}", setting)
        return LakeLocation("file://" + parsed.path.rstrip("/"), setting)
    if text.endswith(("/", os.sep, ".lake")):
        folder = Path(text).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise WarehouseSettingError(f"{raw!r} names a lake folder but is a file; {_LAKE_HELP}", setting)
        return LakeLocation("file://" + str(folder), setting)
    return None


def registry_root(explicit: str | os.PathLike | None = None) -> Path:
    """PROMPT_RELEASE_REGISTRY: the registry root, the folder holding prompts/ and datasets/ (default .)."""
    return _pick(explicit, ENV_REGISTRY, "registry", Path("."))


def registry_configured(explicit: str | os.PathLike | None = None) -> bool:
    """Whether a registry root was named (argument, PROMPT_RELEASE_REGISTRY or the state file) rather than defaulted."""
    return bool(explicit) or bool(os.environ.get(ENV_REGISTRY)) or bool(read_config_file().get("registry"))


def landing_path(explicit: str | os.PathLike | None = None) -> Path:
    """PROMPT_RELEASE_LANDING: the landing folder of trace files, one sub-folder per day (default .prompt_release/landing)."""
    return _pick(explicit, ENV_LANDING, "landing", STATE_DIR / "landing")


def warehouse_source(explicit: str | os.PathLike | None = None) -> str:
    """Where the warehouse location came from, as the user can change it (for error messages)."""
    if explicit:
        return "--warehouse"
    if os.environ.get(ENV_WAREHOUSE):
        return ENV_WAREHOUSE
    if read_config_file().get("warehouse"):
        return f"'warehouse' in {config_file()}"
    return "the default (set --warehouse)"


def lock_timeout_s(explicit: float | None = None) -> float:
    """PROMPT_RELEASE_LOCK_TIMEOUT: seconds a warehouse open waits out another process's lock (default 60)."""
    return float(_number(explicit, ENV_LOCK_TIMEOUT, DEFAULT_LOCK_TIMEOUT_S))


def analyst_snapshot_enabled(explicit: bool | None = None) -> bool:
    """PROMPT_RELEASE_ANALYST_SNAPSHOT: whether writers publish the read-only analyst snapshot after each commit (default on; 0/false/no/off turns it off)."""
    if explicit is not None:
        return bool(explicit)
    return os.environ.get(ENV_ANALYST_SNAPSHOT, "1").strip().lower() not in _OFF


def ingest_memory_limit(explicit: str | None = None) -> str:
    """PROMPT_RELEASE_INGEST_MEMORY_LIMIT: DuckDB memory_limit while ingesting a file (default 512MB)."""
    return _text(explicit, ENV_INGEST_MEMORY_LIMIT) or DEFAULT_INGEST_MEMORY_LIMIT


def ingest_chunk_bytes(explicit: int | None = None) -> int:
    """PROMPT_RELEASE_INGEST_CHUNK_BYTES: bytes of a trace file read per chunk (default 64 MiB)."""
    return int(_number(explicit, ENV_INGEST_CHUNK_BYTES, DEFAULT_INGEST_CHUNK_BYTES))


# A CI system's own name for who triggered the job: (variable, how the actor reads).
_CI_IDENTITIES = (
    ("GITHUB_ACTOR", "github:{}"),
    ("GITLAB_USER_LOGIN", "gitlab:{}"),
    ("CI_COMMIT_AUTHOR", "ci:{}"),
    ("BUILDKITE_BUILD_CREATOR", "buildkite:{}"),
)


def actor(explicit: str | None = None) -> str:
    """PROMPT_RELEASE_ACTOR: who a registry change is recorded as: --actor, else this, else the CI
    system's identity (GITHUB_ACTOR, GITLAB_USER_LOGIN, CI_COMMIT_AUTHOR, BUILDKITE_BUILD_CREATOR) on its
    host, else the OS user on this host (`alice@buildhost`). Names only: no token is ever read."""
    for value in (explicit, os.environ.get(ENV_ACTOR)):
        if value and value.strip():
            return value.strip()
    host = socket.gethostname() or "unknown-host"
    for name, form in _CI_IDENTITIES:
        value = os.environ.get(name)
        if value and value.strip():
            return f"{form.format(value.strip())}@{host}"
    user = (os.environ.get("USER") or os.environ.get("USERNAME") or "").strip()
    if not user:
        try:
            user = getpass.getuser()
        except Exception:
            user = "unknown"
    return f"{user}@{host}"


def llm_base_url(explicit: str | None = None) -> str | None:
    """OPENAI_BASE_URL: the OpenAI-compatible endpoint model calls go to.

    The one resolution order: an explicit base URL (`LLMSettings(base_url=...)`,
    the Dagster `llm` resource's `base_url`, a run config's `llm_base_url`),
    else OPENAI_BASE_URL, else None, which means the embedded offline
    simulator, started for the run (`llm.endpoint.model_endpoint`).
    """
    return _text(explicit, ENV_BASE_URL)


def llm_api_key(explicit: str | None = None) -> str | None:
    """OPENAI_API_KEY: the endpoint's API key (explicit, else this, else none); never logged or stored."""
    return _text(explicit, ENV_API_KEY)


DEFAULT_LLM_CONCURRENCY = 64


def llm_max_concurrency(explicit: int | None = None) -> int:
    """PROMPT_RELEASE_CONCURRENCY: calls in flight at once at the model endpoint (--concurrency, else this,
    else 64); a server that answers one request at a time wants 1, or latency measures its queue."""
    return int(_number(explicit, ENV_CONCURRENCY, DEFAULT_LLM_CONCURRENCY))


DEFAULT_START_DATE = "2026-10-01"


def partitions_start_date() -> str:
    """First day of the daily partitions (traces, failures, version metrics)."""
    return os.environ.get(ENV_START_DATE) or DEFAULT_START_DATE


DEFAULT_MAX_REJECT_RATE = 0.05


def max_reject_rate() -> float:
    """The blocking `traces` check's bound on rejected records / records of a run."""
    value = os.environ.get(ENV_MAX_REJECT_RATE)
    return float(value) if value else DEFAULT_MAX_REJECT_RATE


def is_set(name: str) -> bool:
    """Whether an environment variable has a non-empty value (the Dagster resources then bind it
    through `EnvVar`, so the UI shows the variable's name, never a key)."""
    return bool(os.environ.get(name))


ENV_INGEST_MAX_LINE_BYTES = "PROMPT_RELEASE_INGEST_MAX_LINE_BYTES"
# One trace line (a native record or one OTLP export request) past this is rejected
# as too long, the rest of its file stored; the reader keeps only a head of such a
# line, so memory stays bounded whatever the input (docs/ingest.md).
DEFAULT_INGEST_MAX_LINE_BYTES = 16 * 1024 * 1024


def ingest_max_line_bytes(explicit: int | None = None) -> int:
    """PROMPT_RELEASE_INGEST_MAX_LINE_BYTES: a trace line (or one OTLP export request) longer than
    this is one reject, the rest of its file stored (default 16 MiB)."""
    return int(_number(explicit, ENV_INGEST_MAX_LINE_BYTES, DEFAULT_INGEST_MAX_LINE_BYTES))


ENV_RENDER_TIMEOUT_S = "PROMPT_RELEASE_RENDER_TIMEOUT_S"
ENV_RENDER_MAX_BYTES = "PROMPT_RELEASE_RENDER_MAX_BYTES"
ENV_MAX_MANIFEST_BYTES = "PROMPT_RELEASE_MAX_MANIFEST_BYTES"
# A template is code from a pull request: its render gets a budget (registry/render.py).
# Real system prompts render in milliseconds to a few KB; these leave room for 100x that.
DEFAULT_RENDER_TIMEOUT_S = 2.0
DEFAULT_RENDER_MAX_BYTES = 1024 * 1024
# A YAML file the registry or the pipeline reads (manifest, gate spec, rubric, settings)
DEFAULT_MAX_MANIFEST_BYTES = 1024 * 1024


def render_timeout_s() -> float:
    """PROMPT_RELEASE_RENDER_TIMEOUT_S: seconds one template render may take (default 2)."""
    return _number(None, ENV_RENDER_TIMEOUT_S, DEFAULT_RENDER_TIMEOUT_S)


def render_max_bytes() -> int:
    """PROMPT_RELEASE_RENDER_MAX_BYTES: bytes one template render may produce (default 1 MiB)."""
    return int(_number(None, ENV_RENDER_MAX_BYTES, DEFAULT_RENDER_MAX_BYTES))


def max_manifest_bytes() -> int:
    """PROMPT_RELEASE_MAX_MANIFEST_BYTES: a YAML file (manifest, gate spec, rubric, settings) larger
    than this is refused before parsing (default 1 MiB)."""
    return int(_number(None, ENV_MAX_MANIFEST_BYTES, DEFAULT_MAX_MANIFEST_BYTES))


def warehouse_setting(explicit: str | os.PathLike | None = None) -> str:
    """The warehouse location as text to hand on (a Dagster resource field): a lake URI
    as written (a Path would fold `s3://` into `s3:/`), else the DuckDB file path."""
    raw, _ = _warehouse_raw(explicit)
    try:
        lake = lake_location(explicit)
    except WarehouseSettingError:
        return raw  # the first warehouse access words the error
    return lake.uri if lake else str(warehouse_path(explicit))


def reports_dir(warehouse: str | os.PathLike | None = None) -> Path:
    """Where gate reports (HTML) go by default: beside the warehouse file or local lake folder,
    else (a lake on object storage) under the project-local state folder."""
    lake = lake_location(warehouse)
    if lake is None:
        return warehouse_path(warehouse).parent / "reports"
    if lake.is_s3:
        return STATE_DIR / "reports"
    return Path(lake.uri.removeprefix("file://")).parent / "reports"


ENV_SENSOR_INTERVAL = "PROMPT_RELEASE_SENSOR_INTERVAL_S"


def sensor_interval_s(default: int) -> int:
    """Seconds between a sensor's ticks under the daemon (a local deployment demo shortens them)."""
    value = os.environ.get(ENV_SENSOR_INTERVAL)
    return int(value) if value else default


ENV_CANARY_MIN_DURATION = "PROMPT_RELEASE_CANARY_MIN_DURATION_S"


def canary_min_duration_s() -> float | None:
    """Overrides every release policy's minimum canary duration (demos compress it to 0); None: the policy's."""
    value = os.environ.get(ENV_CANARY_MIN_DURATION)
    return float(value) if value else None
