"""Execute the analyst notebooks against a warehouse and save every figure as a PNG.

    .venv/bin/python scripts/notebook_figures.py [--warehouse PATH] [--out docs/img]

The warehouse resolves as the notebooks resolve it (PROMPT_RELEASE_WAREHOUSE,
else the nearest .prompt_release/warehouse.duckdb); after `make demo` that is
the demo's. Figures are written as `<notebook number>-<figure number>.png`
(e.g. `nb01-2.png`), the pictures docs/analysts.md shows.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from pathlib import Path

import nbclient
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", help="DuckDB warehouse (default: as the notebooks find it)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if args.warehouse:
        env["PROMPT_RELEASE_WAREHOUSE"] = str(Path(args.warehouse).resolve())
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        nbclient.NotebookClient(
            notebook, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT)}}
        ).execute(env=env)
        figures = [
            base64.b64decode(o["data"]["image/png"])
            for c in notebook.cells
            if c.cell_type == "code"
            for o in c.outputs
            if "image/png" in o.get("data", {})
        ]
        for number, png in enumerate(figures, 1):
            target = out / f"nb{path.name[:2]}-{number}.png"
            target.write_bytes(png)
            print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
