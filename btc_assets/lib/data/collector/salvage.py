"""Read a collector hour file that a crash may have cut short, keeping every complete record.

The writer appends one gzip member per flush (writer.py). A crash mid-append (kill -9, power loss, full disk)
leaves that member cut: a prefix of a valid deflate stream, which decodes without error but never reaches its
end. Such a cut is *salvaged*: the complete lines it holds are kept, and the cut itself (file, byte offset of the
member, the partial last line) is returned as a `Truncation` for the dead-letter table, never dropped silently.
A collector restarted within the same hour appends new members after the cut one, so a cut member followed by a
member that decodes completely is salvaged the same way.

Anything else is corruption: a member that fails its CRC or is not deflate data, or a complete line that is not
JSON. It raises `CorruptRecording` naming the file, byte offset and line, because the records after that point
cannot be trusted and skipping them would hide lost data.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field

GZIP_MAGIC = b"\x1f\x8b\x08"
_FIRST_CHUNK, _MAX_CHUNK = 4096, 1 << 20


@dataclass(frozen=True)
class Truncation:
    """The cut end of a gzip member: where it starts in the file and the partial line it held ('' if none)."""

    file: str
    byte_offset: int
    line: int  # the line number the partial line would have had
    reason: str
    tail: str


@dataclass
class HourFile:
    records: list[tuple[int, dict]] = field(default_factory=list)  # (line, record), lines numbered from 1
    truncations: list[Truncation] = field(default_factory=list)


class CorruptRecording(ValueError):
    """An hour file damaged other than by a cut end; the message names file, byte offset, line and what to do."""

    def __init__(self, file: str, byte_offset: int, line: int, problem: str):
        super().__init__(
            f"{file}: {problem} (byte {byte_offset}, line {line}). This is not a crash-cut end, which would be "
            "salvaged: the file is damaged inside. Restore it from a copy, or move it aside (its hour is then "
            "reported missing) and rematerialize; `zcat` recovers the lines before the damage.")
        self.file, self.byte_offset, self.line = file, byte_offset, line


def _inflate(data: memoryview, pos: int) -> tuple[bytes, int | None, zlib.error | None]:
    """Decode the gzip member at `pos`: (output, end offset if it completed, error if it is not valid gzip).

    Fed in growing chunks so that many small members do not copy the rest of the file each (unused_data)."""
    d, out, i, chunk = zlib.decompressobj(31), [], pos, _FIRST_CHUNK
    while i < len(data):
        piece = data[i:i + chunk]
        try:
            out.append(d.decompress(piece))
        except zlib.error as e:
            return b"".join(out), None, e
        if d.eof:
            return b"".join(out), i + len(piece) - len(d.unused_data), None
        i += len(piece)
        chunk = min(chunk * 2, _MAX_CHUNK)
    return b"".join(out), None, None


def _restart_after(data: memoryview, content: bytes, pos: int) -> int | None:
    """The offset of the first member after `pos` that decodes completely, if the bytes from `pos` up to it are a
    clean cut (decode without error and without reaching the member's end); else None."""
    q = content.find(GZIP_MAGIC, pos + 1)
    while q != -1:
        _, end, err = _inflate(data[:q], pos)
        if err is not None or end is not None:
            return None  # [pos, q) is damaged, or a complete member followed by junk: not a crash cut
        _, end, err = _inflate(data, q)
        if end is not None and err is None:
            return q
        q = content.find(GZIP_MAGIC, q + 1)
    return None


def _lines(text: bytes, name: str, offset: int, first_line: int) -> list[tuple[int, dict]]:
    out = []
    for i, raw in enumerate(text.split(b"\n")):
        if raw.strip():
            try:
                out.append((first_line + i, json.loads(raw)))
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
                raise CorruptRecording(name, offset, first_line + i, f"line is not JSON ({e})") from None
    return out


def read_hour_file(content: bytes, name: str) -> HourFile:
    """Every complete record of an hour file, and the crash cuts found in it; raises CorruptRecording otherwise."""
    data, result, pos, line = memoryview(content), HourFile(), 0, 1
    while pos < len(content):
        out, end, err = _inflate(data, pos)
        if end is not None:
            body = out[:-1] if out.endswith(b"\n") else out
            result.records += _lines(body, name, pos, line)
            line += body.count(b"\n") + 1
            pos = end
            continue
        restart = _restart_after(data, content, pos)
        if restart is None and err is not None:
            raise CorruptRecording(name, pos, line, f"gzip member is damaged ({err})")
        cut_end = restart if restart is not None else len(content)
        if restart is not None:  # at the end of the file, `out` already holds what the cut member inflates to
            out, _, _ = _inflate(data[:cut_end], pos)
        complete, _, tail = out.rpartition(b"\n")
        if complete or out.endswith(b"\n"):
            result.records += _lines(complete, name, pos, line)
            line += complete.count(b"\n") + 1
        where = "followed by a restart's records" if restart is not None else "at the end of the file"
        result.truncations.append(Truncation(
            name, pos, line, f"gzip member cut short by a crash ({cut_end - pos} bytes, {where}); "
            f"{'a partial line of ' + str(len(tail)) + ' bytes' if tail else 'no partial line'} lost with any "
            "records still unflushed", tail.decode("utf-8", errors="replace")))
        pos = cut_end
    return result
