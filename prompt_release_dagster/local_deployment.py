"""The deployment shape on one machine: PostgreSQL, Redis, Celery workers, the daemon, the UI.

Every server listens on a free 127.0.0.1 port, keeps its data in a temporary
folder, and runs in its own process group; `LocalDeployment.stop()` (also on
an exception or Ctrl-C inside the `with`) ends each group it started, by PID,
and nothing else. Used by `make deploy-demo` and by the deployment tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prompt_release import config
from prompt_release_dagster.deploy import (
    ENV_CELERY_BROKER,
    ENV_CELERY_VISIBILITY_TIMEOUT,
    ENV_EXECUTOR,
    pg_environment,
    write_home,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_binary(name: str) -> str:
    for folder in PG_BIN_DIRS:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(
            f"PostgreSQL's {name} not found: run scripts/deploy_services.sh (apt-get install postgresql)"
        )
    return found


def _bin(name: str) -> str:
    """A console script of this environment's Python (the venv's dagster, celery ...)."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class LocalDeployment:
    """Start with `with LocalDeployment(env=...) as d:`; `d.env` is what every Dagster process got."""

    env: dict[str, str] = field(default_factory=dict)  # the code location's settings (paths, endpoint)
    workers: int = 2
    # Longer than any step of the demo at full scale: a message held longer is handed out again.
    visibility_timeout_s: int = 1800
    sensor_interval_s: int = 2
    log: Callable[[str], None] = print
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="prompt-release-deploy-")))
    processes: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['webserver']}"

    def __enter__(self) -> LocalDeployment:
        previous = signal.getsignal(signal.SIGTERM)
        # SIGTERM (e.g. CI's timeout) ends us through the same cleanup as Ctrl-C.
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ servers

    def _spawn(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        user: str | None = None,
        cwd: Path | None = None,
    ) -> Process:
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            popen = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd or REPO_ROOT,
                start_new_session=True,
                user=user,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def _pg_user(self) -> str | None:
        # PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
        return "postgres" if os.geteuid() == 0 else None

    def start_postgres(self) -> str:
        data = self.root / "pg"
        data.mkdir(parents=True)
        user = self._pg_user()
        if user:
            shutil.chown(self.root, user)
            shutil.chown(data, user)
        subprocess.run(
            [
                pg_binary("initdb"),
                "-D",
                str(data),
                "-U",
                "dagster",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            user=user,
            cwd=tempfile.gettempdir(),
        )
        # Trust, but only on loopback: no other host may connect, and no unix socket is opened.
        (data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")
        port = self.ports["postgres"] = free_port()
        self._spawn(
            "postgres",
            [
                pg_binary("postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            user=user,
            cwd=Path(tempfile.gettempdir()),
        )
        self._wait_port("postgres", port)
        url = f"postgresql://dagster@127.0.0.1:{port}/dagster"
        import psycopg2  # the `deploy` extra

        deadline = time.monotonic() + 60
        while True:
            try:
                con = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
                break
            except psycopg2.OperationalError:  # still starting up
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE dagster")
        con.close()
        return url

    def start_redis(self) -> str:
        port = self.ports["redis"] = free_port()
        redis = shutil.which("redis-server")
        if not redis:
            raise RuntimeError("redis-server not found: run scripts/deploy_services.sh (apt-get install redis-server)")
        self._spawn(
            "redis",
            [
                redis,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
            ],
        )
        self._wait_port("redis", port)
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.log(f"deployment folder {self.root} (logs in {self.root / 'logs'})")
        pg_url = self.start_postgres()
        broker = self.start_redis()
        # A queued run waits at most a second for the daemon (Dagster's default: 5): the story is a chain of runs.
        write_home(self.home, visibility_timeout_s=self.visibility_timeout_s, dequeue_interval_s=1)
        self.env = {
            **os.environ,
            **self.env,
            **pg_environment(pg_url),
            "DAGSTER_HOME": str(self.home),
            ENV_EXECUTOR: "celery",
            ENV_CELERY_BROKER: broker,
            ENV_CELERY_VISIBILITY_TIMEOUT: str(self.visibility_timeout_s),
            config.ENV_SENSOR_INTERVAL: str(self.sensor_interval_s),
            "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            # `dagster-celery worker start` runs `celery` from PATH: this environment's.
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        }
        self.log(f"PostgreSQL on 127.0.0.1:{self.ports['postgres']}, Redis on 127.0.0.1:{self.ports['redis']}")
        for n in range(1, self.workers + 1):
            self.start_worker(f"worker{n}")
        self.ports["webserver"] = free_port()
        self._spawn(
            "webserver",
            [_bin("dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.ports["webserver"])],
            env=self.env,
        )
        self._spawn("daemon", [_bin("dagster-daemon"), "run", "-w", "workspace.yaml"], env=self.env)
        self._wait_port("webserver", self.ports["webserver"], timeout=180)
        self.log(f"{self.workers} Celery workers, dagster-daemon; the UI: {self.ui_url}")

    def start_worker(self, name: str) -> Process:
        """One Celery worker, one step at a time (a worker is a slot, as a pod would be)."""
        return self._spawn(
            name,
            [
                _bin("dagster-celery"),
                "worker",
                "start",
                "-A",
                "dagster_celery.app",
                "-y",
                str(self.home / "celery.yaml"),
                "-n",
                name,
                "--",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
            ],
            env=self.env,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a started process's whole group (a worker and its pool process), as a lost machine."""
        process = next(p for p in self.processes if p.name == name)
        _signal_group(process.popen, signal.SIGKILL)
        process.popen.wait(timeout=30)

    def _wait_port(self, name: str, port: int, timeout: float = 60) -> None:
        process = next(p for p in reversed(self.processes) if p.name == name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {process.popen.returncode}: see {process.log}\n"
                    + process.log.read_text()[-2000:]
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{name} not listening on 127.0.0.1:{port} after {timeout:.0f}s: see {process.log}")

    def stop(self) -> None:
        """End every process group started here (daemon and workers first, the servers last), by PID."""
        for process in reversed(self.processes):
            _signal_group(process.popen, signal.SIGTERM)
            try:
                process.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
            # Whatever the leader left behind in its group (a code server, a pool process) goes too.
            _signal_group(process.popen, signal.SIGKILL)
            if process.popen.poll() is None:
                process.popen.wait(timeout=10)
        self.processes.clear()
        if not os.environ.get("PROMPT_RELEASE_KEEP_DEPLOYMENT_FOLDER"):
            shutil.rmtree(self.root, ignore_errors=True)


def _signal_group(popen: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)  # start_new_session: the group id is the leader's PID
    except ProcessLookupError:
        pass


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt
