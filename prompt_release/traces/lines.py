"""Read a trace file as chunks of lines without per-line Python work.

Files are plain or gzip (`.gz`), read in blocks of about `chunk_bytes`; each
chunk holds whole lines only, located by numpy (newline positions), so the
native path can hand a chunk to DuckDB as one Arrow array. A UTF-8 byte order
mark at the start of the file is skipped and a CR before LF is not part of a
line. A gzip stream that ends early yields the readable prefix; the partial
tail after the last newline is kept aside in `LineReader.cut` so the caller
can record one reject naming the file.

Memory is bounded whatever the input: gzip is decompressed in pieces of at
most one chunk (a small bomb expanding to gigabytes never exists whole), and
a line longer than `max_line_bytes` is not accumulated: the reader keeps its
head, hashes and counts the rest, and hands it over as one short line listed
in `LineChunk.oversize`, which the caller rejects as too long.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prompt_release import config

BOM = b"\xef\xbb\xbf"
OVERSIZE_HEAD_BYTES = 64 * 1024  # what is kept of a too-long line (reject rows store this much)
_GZIP_READ_BYTES = 1024 * 1024


@dataclass
class LineChunk:
    """Whole lines `data[starts[i]:ends[i]]`, numbered from `first_line`.

    `data` may be a buffer the reader reuses: once `release()` is called, it
    may be overwritten by a later chunk (see `LineReader(reuse_buffers=True)`).
    """

    first_line: int
    data: bytes | bytearray
    starts: np.ndarray  # int64
    ends: np.ndarray  # int64, exclusive, CR/LF excluded
    _pool: list | None = None
    # line index -> (full length, sha256 hex) of lines past the reader's max_line_bytes;
    # `data` may hold only the head of such a line
    oversize: dict[int, tuple[int, str]] | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def line(self, i: int) -> bytes:
        """Line `i` as bytes of its own (a copy: it outlives the chunk's buffer)."""
        return bytes(memoryview(self.data)[self.starts[i] : self.ends[i]])

    def release(self) -> None:
        """The caller is done with `data`: the reader may fill it again."""
        if self._pool is not None:  # set by the reader only on its own buffers
            self._pool.append(self.data)
            self._pool = None


@dataclass
class FileCut:
    """The file could not be read to its end (e.g. a gzip stream cut short)."""

    line_number: int
    tail: bytes
    message: str


def chunk_bytes_setting() -> int:
    return config.ingest_chunk_bytes()


def _gzip_blocks(path: Path, block: int, reader: LineReader) -> Iterator[bytes]:
    """Decompressed pieces of at most `block` bytes each (max_length below): a
    highly compressed input never expands whole in memory."""
    with open(path, "rb") as handle:
        # zlib by hand rather than gzip.open: on a cut stream gzip raises and
        # loses what it had decompressed; here the prefix is kept.
        decomp = zlib.decompressobj(wbits=31)
        compressed = b""
        while True:
            if not compressed:
                compressed = handle.read(_GZIP_READ_BYTES)
                if not compressed:
                    break
            try:
                out = decomp.decompress(compressed, block)
                compressed = decomp.unconsumed_tail
                if decomp.eof and decomp.unused_data:  # multi-member gzip: the next member starts here
                    compressed = decomp.unused_data + compressed
                    decomp = zlib.decompressobj(wbits=31)
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
    """Iterate `LineChunk`s of a file; afterwards `cut` tells whether it ended early.

    With `reuse_buffers`, a plain file is read into a few buffers that go
    round: each chunk's buffer is filled again once the caller has called
    `chunk.release()` (a chunk never released just costs a new buffer). That
    spares the allocation and page faults of a fresh 64 MB per chunk.
    """

    def __init__(
        self,
        path: str | Path,
        chunk_bytes: int | None = None,
        *,
        reuse_buffers: bool = False,
        max_line_bytes: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes or chunk_bytes_setting()
        self.max_line_bytes = config.ingest_max_line_bytes(max_line_bytes)
        self.cut_message: str | None = None
        self.cut: FileCut | None = None
        self.lines = 0
        self._pool: list[bytearray] | None = [] if reuse_buffers else None
        self._block_bytes = self.chunk_bytes

    def __iter__(self) -> Iterator[LineChunk]:
        pending = b""
        long: _LongLine | None = None  # a line past max_line_bytes, being skipped to its end
        first = True
        next_line = 1
        limit = self.max_line_bytes
        for data, size in self._blocks(lambda: pending):
            if first:
                first = False
                if data[:size].startswith(BOM):
                    data, size = data[len(BOM) : size], size - len(BOM)
            start = 0
            if long is not None:
                newline = data.find(b"\n", 0, size)
                long.feed(memoryview(data)[: size if newline < 0 else newline])
                if newline < 0:
                    self._give_back(data)
                    continue
                yield long.chunk(next_line)
                next_line += 1
                long, start = None, newline + 1
            last_nl = data.rfind(b"\n", start, size)
            if last_nl < 0:  # one line longer than the block: read on into a bigger buffer
                pending = bytes(data[start:size])
                self._give_back(data)
                if len(pending) > limit:
                    long, pending = _LongLine(pending), b""
                continue
            pending = bytes(data[last_nl + 1 : size])
            chunk = _split(data, last_nl + 1, next_line, start, limit)
            if isinstance(data, bytearray):
                chunk._pool = self._pool
            next_line += len(chunk)
            yield chunk
            if len(pending) > limit:
                long, pending = _LongLine(pending), b""
        if self.cut_message is not None:
            self.cut = FileCut(next_line, long.head if long is not None else pending, self.cut_message)
        elif long is not None:
            yield long.chunk(next_line)
            next_line += 1
        elif pending:
            chunk = _split(pending + b"\n", len(pending) + 1, next_line, 0, limit)
            next_line += len(chunk)
            yield chunk
        self.lines = next_line - 1

    def _blocks(self, pending: Callable[[], bytes]) -> Iterator[tuple[bytes | bytearray, int]]:
        """(buffer, size): `buffer[:size]` is the unfinished line before it
        (`pending()`) followed by the next block of the file."""
        if self.path.name.endswith(".gz"):
            for block in _gzip_blocks(self.path, self.chunk_bytes, self):
                # into the buffers that go round, as for a plain file: a chunk's data must not
                # be a new object per chunk (DuckDB holds what is registered until commit)
                head = pending()
                buffer = self._buffer(len(head) + len(block))
                buffer[: len(head)] = head
                buffer[len(head) : len(head) + len(block)] = block
                yield buffer, len(head) + len(block)
            return
        with open(self.path, "rb", buffering=0) as handle:
            # A small file gets buffers of its size, not of a chunk (zeroing 65 MB per tiny
            # file was most of its ingest); one that grows while read goes on in blocks of 64 KiB or more.
            self._block_bytes = min(self.chunk_bytes, max(os.fstat(handle.fileno()).st_size + 1, 1 << 16))
            while True:
                head = pending()
                buffer = self._buffer(len(head) + self._block_bytes)
                view = memoryview(buffer)
                view[: len(head)] = head
                size, target = len(head), len(head) + self._block_bytes
                while size < target and (got := handle.readinto(view[size:target])):
                    size += got
                view.release()
                if size == len(head):  # end of file; the unfinished line stays pending
                    self._give_back(buffer)
                    return
                yield buffer, size

    def _buffer(self, size: int) -> bytearray:
        pool = self._pool
        while pool:
            buffer = pool.pop()
            if len(buffer) >= size:
                return buffer
        return bytearray(max(size, self._block_bytes + min(self._block_bytes, 1 << 20)) if pool is not None else size)

    def _give_back(self, buffer: bytes | bytearray) -> None:
        if self._pool is not None and isinstance(buffer, bytearray):
            self._pool.append(buffer)


class _LongLine:
    """A line past the limit: its head, and the length and hash of all of it."""

    def __init__(self, start: bytes) -> None:
        self.head = start[:OVERSIZE_HEAD_BYTES]
        self.length = 0
        self._hash = hashlib.sha256()
        self.feed(start)

    def feed(self, data: bytes | memoryview) -> None:
        self.length += len(data)
        self._hash.update(data)

    def chunk(self, line_number: int) -> LineChunk:
        data = self.head + b"\n"
        chunk = _split(data, len(data), line_number)
        chunk.oversize = {0: (self.length, self._hash.hexdigest())}
        return chunk


def _split(data: bytes | bytearray, end: int, first_line: int, begin: int = 0, limit: int | None = None) -> LineChunk:
    """Locate the lines of `data[begin:end]`, which ends with a newline; with
    `limit`, list the lines longer than it in `oversize`."""
    view = np.frombuffer(data, dtype=np.uint8, count=end)
    newlines = np.flatnonzero(view[begin:] == 10).astype(np.int64) + begin
    starts = np.empty(len(newlines), dtype=np.int64)
    starts[0] = begin
    starts[1:] = newlines[:-1] + 1
    ends = newlines.copy()
    has_cr = np.flatnonzero((ends > starts) & (view[np.maximum(ends - 1, 0)] == 13))
    ends[has_cr] -= 1
    chunk = LineChunk(first_line, data, starts, ends)
    if limit is not None:
        long = np.flatnonzero(ends - starts > limit)
        if len(long):
            chunk.oversize = {
                int(i): (int(ends[i] - starts[i]), hashlib.sha256(memoryview(data)[starts[i] : ends[i]]).hexdigest())
                for i in long
            }
    return chunk
