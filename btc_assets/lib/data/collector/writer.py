"""Hourly-rolled bronze files of the collector: gzip JSON lines, one file per stream kind and UTC hour.

Layout under the root (the hour is the one the message was *received* in):
    <kind>/<YYYY-MM-DD>/<kind>-<YYYY-MM-DD>-<HH>.jsonl.gz     {"recv_ms", "stream", "data"} per line
    dead_letter/<YYYY-MM-DD>/dead_letter-<YYYY-MM-DD>-<HH>.jsonl.gz   {"recv_ms", "stream", "reason", "raw"}
    gaps/<YYYY-MM-DD>/gaps-<YYYY-MM-DD>-<HH>.jsonl.gz         {"start_ms", "end_ms", "reason", ...}

Records are buffered and appended as one gzip member per flush (concatenated members are one valid gzip file,
so a file is readable while the hour is still being written and a crash loses at most the unflushed buffer).
`flush()` runs every `flush_every` records, every `flush_interval_s` (called by the session) and on close.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def hour_of(ms: int) -> tuple[str, str]:
    t = time.gmtime(ms / 1000)
    return time.strftime("%Y-%m-%d", t), time.strftime("%H", t)


def hour_names(kind: str, start_ms: int, end_ms: int, slack_ms: int = 10_000) -> set[str]:
    """Names of the hour files that can hold `kind` records of events in [start_ms, end_ms). Files go by receive
    time, a little after the event: the hour `slack_ms` after the end counts too."""
    names, ms = set(), start_ms - start_ms % 3_600_000
    while ms < end_ms + slack_ms:
        day, hour = hour_of(ms)
        names.add(f"{kind}-{day}-{hour}.jsonl.gz")
        ms += 3_600_000
    return names


def file_for(root: Path, kind: str, ms: int) -> Path:
    day, hour = hour_of(ms)
    return root / kind / day / f"{kind}-{day}-{hour}.jsonl.gz"


class HourlyWriter:
    def __init__(self, root: str | Path, flush_every: int = 5_000):
        self.root = Path(root)
        self.flush_every = flush_every
        self._buffers: dict[Path, list[str]] = defaultdict(list)
        self._pending = 0
        self.counts: dict[str, int] = defaultdict(int)  # kind -> records written (incl. dead letters, gaps)
        self.files: set[Path] = set()
        self.bytes_written = 0

    def _add(self, kind: str, ms: int, record: dict[str, Any]) -> None:
        self._buffers[file_for(self.root, kind, ms)].append(json.dumps(record, separators=(",", ":")))
        self.counts[kind] += 1
        self._pending += 1
        if self._pending >= self.flush_every:
            self.flush()

    def record(self, kind: str, stream: str, data: dict, recv_ms: int) -> None:
        self._add(kind, recv_ms, {"recv_ms": recv_ms, "stream": stream, "data": data})

    def dead_letter(self, stream: str | None, raw: Any, reason: str, recv_ms: int) -> None:
        text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
        self._add("dead_letter", recv_ms, {"recv_ms": recv_ms, "stream": stream, "reason": reason, "raw": text})

    def gap(self, start_ms: int, end_ms: int, reason: str, **extra: Any) -> None:
        """Streams were not received from start_ms to end_ms (filed under the hour the gap ended in)."""
        self._add("gaps", end_ms, {"start_ms": start_ms, "end_ms": end_ms, "reason": reason, **extra})

    def flush(self) -> None:
        """Append every buffered record to its hour file (one gzip member per file per flush)."""
        for path, lines in self._buffers.items():
            if not lines:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            blob = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=5)
            with open(path, "ab") as fh:
                fh.write(blob)
            self.bytes_written += len(blob)
            self.files.add(path)
        self._buffers.clear()
        self._pending = 0

    @property
    def buffered(self) -> int:
        return self._pending

    def close(self) -> None:
        self.flush()


def read_records(path: str | Path) -> list[dict]:
    """Every record of one hour file (for the Dagster ingest and tests)."""
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh if line.strip()]
