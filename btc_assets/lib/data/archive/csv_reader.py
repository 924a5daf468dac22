"""Parse the single CSV inside a Binance archive zip into a typed pandas DataFrame.

Archive CSVs vary over time (header or not, ms or µs epochs, `27013` vs `27033.20`; see FORMATS.md), so the
parser sniffs the header and the time unit per file instead of trusting dates. A multithreaded pyarrow reader
handles well-formed files; only when it rejects a file does a line-by-line Python scan run, either to accept
unusual-but-valid formatting or to name the exact line, column and value that is wrong.
"""

from __future__ import annotations

import datetime
import io
import logging
import zipfile
import zlib
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from btc_assets.lib.data.archive.csv_values import NUM_RE, finish_columns, slow_parse
from btc_assets.lib.data.archive.errors import REFETCH, CorruptArchive, MalformedCsv
from btc_assets.lib.data.archive.layouts import CsvLayout

logger = logging.getLogger(__name__)


def read_archive_csv(content: bytes, name: str, layout: CsvLayout) -> pd.DataFrame:
    """Unzip `content` (an archive zip called `name`) and return its CSV typed per `layout`, in file order."""
    zf, member = _open_zip(content, name)
    with zf:
        df = _stream_parse(zf, member, name, layout)
        if df is not None:
            return df
        data = _read_member(zf, member, name)
    return parse_csv_bytes(data, name, layout)


_ZIP_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)


def _open_zip(content: bytes, name: str) -> tuple[zipfile.ZipFile, zipfile.ZipInfo]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        raise CorruptArchive(f"{name} is not a readable zip ({exc}; {len(content)} bytes): "
                             "it is probably truncated or not a zip at all; delete it and re-fetch", name) from exc
    members = [i for i in zf.infolist() if not i.is_dir()]
    if len(members) != 1 or not members[0].filename.lower().endswith(".csv"):
        zf.close()
        raise CorruptArchive(f"{name}: an archive zip holds exactly one .csv file, but this one has "
                             f"{[m.filename for m in members]}: it is not an archive file; {REFETCH}", name)
    member = members[0]
    base = name.rsplit("/", 1)[-1]  # `name` may be a URL or path
    if base.endswith(".zip") and member.filename.rsplit("/", 1)[-1] != base[:-4] + ".csv":
        logger.warning("%s holds %s, not the CSV of the same name the archive uses", name, member.filename)
    return zf, member


def _corrupt(name: str, member: zipfile.ZipInfo, exc: BaseException) -> CorruptArchive:
    # zipfile reports CRC failures as BadZipFile and truncated deflate streams as EOFError/zlib.error.
    return CorruptArchive(f"{name} is not a readable zip ({type(exc).__name__} while extracting "
                          f"{member.filename}: {exc}): delete it and re-fetch", name)


def _read_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, name: str) -> bytes:
    try:
        return zf.read(member)
    except _ZIP_READ_ERRORS as exc:
        raise _corrupt(name, member, exc) from exc


def _stream_parse(zf: zipfile.ZipFile, member: zipfile.ZipInfo, name: str,
                  layout: CsvLayout) -> pd.DataFrame | None:
    """Fast path: parse while decompressing (zlib releases the GIL, so inflate and parsing overlap).

    Returns None when the file needs the in-memory path: a BOM, an odd first line, formatting the
    fast reader rejects, or an error whose exact line must be found.
    """
    try:
        with zf.open(member) as f:
            head = f.peek(512)  # ZipExtFile.peek returns at most 512 bytes: enough for any archive header
            nl = head.find(b"\n")
            if nl <= 0 or head.startswith(b"\xef\xbb\xbf"):
                return None
            first_line = head[:nl].decode("utf-8", errors="replace").rstrip("\r")
            header = _is_header(first_line, layout)
            if header:
                _check_header(first_line, name, layout)
                f.readline()
            columns = _fast_parse(f, layout)
    except pa.ArrowInvalid as exc:
        logger.info("%s: fast CSV reader rejected the file (%s); re-reading it in memory", name, exc)
        return None
    except _ZIP_READ_ERRORS as exc:
        raise _corrupt(name, member, exc) from exc
    if len(columns[layout.columns[0]]) == 0:
        return None  # let the in-memory path produce the "no data rows" error
    return finish_columns(columns, layout, name, 2 if header else 1)


def parse_csv_bytes(data: bytes, name: str, layout: CsvLayout) -> pd.DataFrame:
    """Parse already-unzipped archive CSV bytes; `name` is used in every error message."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = len(data)
    while end > start and data[end - 1] in b"\r\n":  # trailing blank lines are harmless, drop them
        end -= 1
    had_final_newline = b"\n" in data[end:]
    if end == start:
        raise MalformedCsv(f"{name}: the CSV is empty, no data rows: {REFETCH}", name, row=None)
    nl = data.find(b"\n", start, end)
    first_end = end if nl == -1 else nl
    first_line = data[start:first_end].decode("utf-8", errors="replace").rstrip("\r")
    if _is_header(first_line, layout):
        _check_header(first_line, name, layout)
        body_start, first_line_no = first_end + 1, 2
        if body_start >= end:
            raise MalformedCsv(f"{name}: the CSV has only the header on line 1 and no data rows from line 2 on: "
                               f"{REFETCH}", name, row=2)
    else:
        body_start, first_line_no = start, 1
    body = pa.py_buffer(data).slice(body_start, end - body_start)
    try:
        columns = _fast_parse(body, layout)
    except pa.ArrowInvalid as exc:
        # The fast reader cannot say which line failed; the slow scan either accepts unusual formatting
        # (e.g. "5.0" in an integer column) or raises with the exact line, column and value.
        logger.info("%s: fast CSV reader rejected the file (%s); scanning it line by line", name, exc)
        columns = slow_parse(body.to_pybytes(), first_line_no, layout, name, had_final_newline)
    return finish_columns(columns, layout, name, first_line_no)


def _looks_like_value(text: str, kind: str) -> bool:
    text = text.strip()
    if kind in ("int", "float", "time"):
        return NUM_RE.fullmatch(text) is not None
    if kind == "bool":
        return text.lower() in ("true", "false")
    if kind == "datetime":
        try:
            datetime.datetime.fromisoformat(text)
        except ValueError:
            return False
        return True
    return True  # a string column cannot tell a header from data; _check_header compares names instead


def _is_header(first_line: str, layout: CsvLayout) -> bool:
    first = first_line.split(",", 1)[0].strip().strip('"')
    if layout.kind(layout.columns[0]) == "str":
        return first == layout.columns[0]
    return not _looks_like_value(first, layout.kind(layout.columns[0]))


def _check_header(first_line: str, name: str, layout: CsvLayout) -> None:
    found = tuple(layout.header_aliases.get(h, h) for h in (f.strip().strip('"') for f in first_line.split(",")))
    if found != layout.columns:
        missing = [c for c in layout.columns if c not in found]
        extra = [c for c in found if c not in layout.columns]
        raise MalformedCsv(
            f"{name}: line 1 is a header that does not match the {layout.name} layout: expected "
            f"{','.join(layout.columns)} but found {','.join(found)} (missing {missing}, unexpected {extra}): "
            f"check the file is a {layout.name} file; if the archive changed its format, update the layout",
            name, row=1, value=first_line[:300])


def _fast_parse(source: pa.Buffer | IO[bytes], layout: CsvLayout) -> dict[str, np.ndarray]:
    arrow_types = {"int": pa.int64(), "time": pa.int64(), "float": pa.float64(), "bool": pa.bool_(),
                   "datetime": pa.timestamp("ns"), "str": pa.string()}
    table = pacsv.read_csv(
        pa.BufferReader(source) if isinstance(source, pa.Buffer) else source,
        # 4 MiB blocks: measurably faster than the 1 MiB default on multi-MB archive CSVs.
        read_options=pacsv.ReadOptions(column_names=list(layout.columns), use_threads=True, block_size=4 << 20),
        # Empty lines must fail rather than vanish, else row index != line number in messages.
        parse_options=pacsv.ParseOptions(delimiter=",", quote_char=False, ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            # nullable columns are read as text and cast below, so only *their* empty fields become null
            column_types={c: pa.string() if c in layout.nullable_columns else arrow_types[layout.kind(c)]
                          for c in layout.columns},
            null_values=[], strings_can_be_null=False, quoted_strings_can_be_null=False,
            true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"]),
    )
    out = {}
    for c in layout.columns:
        col = table.column(c)
        if c in layout.nullable_columns:  # "" -> null -> NaN; anything unparsable raises ArrowInvalid (slow path)
            text = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
            col = pc.cast(text, pa.float64())
            if pc.any(pc.is_nan(col)).as_py():  # "nan" text is not an empty field: let the slow path name it
                raise pa.ArrowInvalid(f"column {c}: a non-numeric value")
        out[c] = col.to_numpy()
    return out
