"""Read a trace file as chunks of lines without per-line Python work.

Files are plain or gzip (`.gz`), read in blocks of about `chunk_bytes`; each
chunk holds whole lines only, located by numpy (newline positions), so the
native path can hand a chunk to DuckDB as one Arrow array. A UTF-8 byte order
mark at the start of the file is skipped and a CR before LF is not part of a
line. A gzip stream that ends early yields the readable prefix; the partial
tail after the last newline is kept aside in `LineReader.cut` so the caller
can record one reject naming the file.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOM = b"\xef\xbb\xbf"
DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
ENV_CHUNK_BYTES = "PROMPT_RELEASE_INGEST_CHUNK_BYTES"


@dataclass
class LineChunk:
    """Whole lines `data[starts[i]:ends[i]]`, numbered from `first_line`."""

    first_line: int
    data: bytes
    starts: np.ndarray  # int64
    ends: np.ndarray  # int64, exclusive, CR/LF excluded

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> bytes:
        return self.data[self.starts[i] : self.ends[i]]


@dataclass
class FileCut:
    """The file could not be read to its end (e.g. a gzip stream cut short)."""

    line_number: int
    tail: bytes
    message: str


def chunk_bytes_setting() -> int:
    value = os.environ.get(ENV_CHUNK_BYTES)
    return int(value) if value else DEFAULT_CHUNK_BYTES


def _raw_blocks(path: Path, block: int, reader: "LineReader") -> Iterator[bytes]:
    with open(path, "rb") as handle:
        if not path.name.endswith(".gz"):
            while data := handle.read(block):
                yield data
            return
        # zlib by hand rather than gzip.open: on a cut stream gzip raises and
        # loses what it had decompressed; here the prefix is kept.
        decomp = zlib.decompressobj(wbits=31)
        while True:
            compressed = handle.read(block)
            if not compressed:
                break
            try:
                out = decomp.decompress(compressed)
                while decomp.eof and decomp.unused_data:  # multi-member gzip
                    rest = decomp.unused_data
                    decomp = zlib.decompressobj(wbits=31)
                    out += decomp.decompress(rest)
            except zlib.error as exc:
                reader.cut_message = f"gzip data is corrupt in {path}: {exc}"
                return
            if out:
                yield out
        if not decomp.eof:
            reader.cut_message = (
                f"gzip stream of {path} ends before its end-of-stream marker (file cut short); "
                "the readable prefix was ingested"
            )


class LineReader:
    """Iterate `LineChunk`s of a file; afterwards `cut` tells whether it ended early."""

    def __init__(self, path: str | Path, chunk_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes or chunk_bytes_setting()
        self.cut_message: str | None = None
        self.cut: FileCut | None = None
        self.lines = 0

    def __iter__(self) -> Iterator[LineChunk]:
        pending = b""
        first = True
        next_line = 1
        for block in _raw_blocks(self.path, self.chunk_bytes, self):
            if first:
                first = False
                if block.startswith(BOM):
                    block = block[len(BOM) :]
            data = pending + block if pending else block
            last_nl = data.rfind(b"\n")
            if last_nl < 0:
                pending = data
                continue
            pending = data[last_nl + 1 :]
            chunk = _split(data, last_nl + 1, next_line)
            next_line += len(chunk)
            yield chunk
        if self.cut_message is not None:
            self.cut = FileCut(next_line, pending, self.cut_message)
        elif pending:
            chunk = _split(pending + b"\n", len(pending) + 1, next_line)
            next_line += len(chunk)
            yield chunk
        self.lines = next_line - 1


def _split(data: bytes, end: int, first_line: int) -> LineChunk:
    """Locate the lines of `data[:end]`, which ends with a newline."""
    view = np.frombuffer(data, dtype=np.uint8, count=end)
    newlines = np.flatnonzero(view == 10).astype(np.int64)
    starts = np.empty(len(newlines), dtype=np.int64)
    starts[0] = 0
    starts[1:] = newlines[:-1] + 1
    ends = newlines.copy()
    has_cr = np.flatnonzero((ends > starts) & (view[np.maximum(ends - 1, 0)] == 13))
    ends[has_cr] -= 1
    return LineChunk(first_line, data, starts, ends)
