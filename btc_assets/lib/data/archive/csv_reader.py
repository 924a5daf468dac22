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
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from btc_assets.lib.data.archive.files import CorruptArchive, MalformedCsv

logger = logging.getLogger(__name__)

_REFETCH = "delete the local copy and re-fetch it; if a fresh download fails the same way, report the file"


@dataclass(frozen=True)
class CsvLayout:
    """Column names (as in the archive header) and how each column is typed."""

    name: str
    columns: tuple[str, ...]
    int_columns: tuple[str, ...]
    float_columns: tuple[str, ...]
    time_columns: tuple[str, ...]
    bool_columns: tuple[str, ...] = ()
    datetime_str_columns: tuple[str, ...] = ()
    str_columns: tuple[str, ...] = ()
    header_aliases: dict[str, str] = field(default_factory=dict, hash=False)
    # float columns whose value may be absent (an empty field, read as NaN): metrics' series are published
    # separately and a 5-minute row can lack one of them; any other empty field is an error.
    nullable_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        kinds: dict[str, str] = {}
        for kind, cols in (("int", self.int_columns), ("float", self.float_columns),
                           ("time", self.time_columns), ("bool", self.bool_columns),
                           ("datetime", self.datetime_str_columns), ("str", self.str_columns)):
            for col in cols:
                if col in kinds:
                    raise ValueError(f"CsvLayout {self.name}: column {col!r} typed twice ({kinds[col]}, {kind})")
                kinds[col] = kind
        if set(kinds) != set(self.columns) or len(set(self.columns)) != len(self.columns):
            untyped, unknown = sorted(set(self.columns) - set(kinds)), sorted(set(kinds) - set(self.columns))
            raise ValueError(f"CsvLayout {self.name}: every column must be typed exactly once; "
                             f"untyped: {untyped}, unknown: {unknown}, columns: {self.columns}")
        not_float = [c for c in self.nullable_columns if kinds.get(c) != "float"]
        if not_float:
            raise ValueError(f"CsvLayout {self.name}: only float columns can be nullable, not {not_float}")
        object.__setattr__(self, "_kinds", kinds)

    def kind(self, column: str) -> str:
        """'int', 'float', 'time', 'bool', 'datetime' or 'str'."""
        return self._kinds[column]  # type: ignore[attr-defined]


_KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
                  "taker_buy_volume", "taker_buy_quote_volume", "ignore")
KLINES = CsvLayout(
    name="klines", columns=_KLINE_COLUMNS, int_columns=("count",), time_columns=("open_time", "close_time"),
    float_columns=tuple(c for c in _KLINE_COLUMNS if c not in ("count", "open_time", "close_time")))
FUNDING_RATE = CsvLayout(
    name="fundingRate", columns=("calc_time", "funding_interval_hours", "last_funding_rate"),
    int_columns=("funding_interval_hours",), float_columns=("last_funding_rate",), time_columns=("calc_time",))
AGG_TRADES = CsvLayout(
    name="aggTrades",
    columns=("agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
             "is_buyer_maker"),
    int_columns=("agg_trade_id", "first_trade_id", "last_trade_id"), float_columns=("price", "quantity"),
    time_columns=("transact_time",), bool_columns=("is_buyer_maker",))
TRADES = CsvLayout(
    name="trades", columns=("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
    int_columns=("id",), float_columns=("price", "qty", "quote_qty"), time_columns=("time",),
    bool_columns=("is_buyer_maker",))
BOOK_DEPTH = CsvLayout(
    name="bookDepth", columns=("timestamp", "percentage", "depth", "notional"), int_columns=(),
    float_columns=("percentage", "depth", "notional"), time_columns=(), datetime_str_columns=("timestamp",))
_METRIC_FLOATS = ("sum_open_interest", "sum_open_interest_value", "count_toptrader_long_short_ratio",
                  "sum_toptrader_long_short_ratio", "count_long_short_ratio", "sum_taker_long_short_vol_ratio")
METRICS = CsvLayout(
    name="metrics", columns=("create_time", "symbol") + _METRIC_FLOATS, int_columns=(),
    float_columns=_METRIC_FLOATS, time_columns=(), datetime_str_columns=("create_time",), str_columns=("symbol",),
    nullable_columns=_METRIC_FLOATS)

LAYOUTS: dict[str, CsvLayout] = {
    "klines": KLINES, "markPriceKlines": KLINES, "indexPriceKlines": KLINES, "premiumIndexKlines": KLINES,
    "fundingRate": FUNDING_RATE, "aggTrades": AGG_TRADES, "trades": TRADES, "bookDepth": BOOK_DEPTH,
    "metrics": METRICS,
}

_NUM_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_INT64_MAX = 2**63 - 1
# Epoch bounds: below 1e11 ms is before 1973 (seconds or garbage, not ms); datetime64[ns] ends in 2262.
_EPOCH_MIN_MS = 10**11
_US_THRESHOLD = 10**15
_MAX_MS = _INT64_MAX // 10**6
_MAX_US = _INT64_MAX // 10**3


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
                             f"{[m.filename for m in members]}: it is not an archive file; {_REFETCH}", name)
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
    return _finish(columns, layout, name, 2 if header else 1)


def parse_csv_bytes(data: bytes, name: str, layout: CsvLayout) -> pd.DataFrame:
    """Parse already-unzipped archive CSV bytes; `name` is used in every error message."""
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    end = len(data)
    while end > start and data[end - 1] in b"\r\n":  # trailing blank lines are harmless, drop them
        end -= 1
    had_final_newline = b"\n" in data[end:]
    if end == start:
        raise MalformedCsv(f"{name}: the CSV is empty, no data rows: {_REFETCH}", name, row=None)
    nl = data.find(b"\n", start, end)
    first_end = end if nl == -1 else nl
    first_line = data[start:first_end].decode("utf-8", errors="replace").rstrip("\r")
    if _is_header(first_line, layout):
        _check_header(first_line, name, layout)
        body_start, first_line_no = first_end + 1, 2
        if body_start >= end:
            raise MalformedCsv(f"{name}: the CSV has only the header on line 1 and no data rows from line 2 on: "
                               f"{_REFETCH}", name, row=2)
    else:
        body_start, first_line_no = start, 1
    body = pa.py_buffer(data).slice(body_start, end - body_start)
    try:
        columns = _fast_parse(body, layout)
    except pa.ArrowInvalid as exc:
        # The fast reader cannot say which line failed; the slow scan either accepts unusual formatting
        # (e.g. "5.0" in an integer column) or raises with the exact line, column and value.
        logger.info("%s: fast CSV reader rejected the file (%s); scanning it line by line", name, exc)
        columns = _slow_parse(body.to_pybytes(), first_line_no, layout, name, had_final_newline)
    return _finish(columns, layout, name, first_line_no)


def _looks_like_value(text: str, kind: str) -> bool:
    text = text.strip()
    if kind in ("int", "float", "time"):
        return _NUM_RE.fullmatch(text) is not None
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


def _parse_float(s: str) -> float:
    s = s.strip()
    if not s:
        raise ValueError("empty value in a numeric column")
    if not _NUM_RE.fullmatch(s):
        raise ValueError("not a number")
    return float(s)


def _parse_nullable_float(s: str) -> float:
    return float("nan") if not s.strip() else _parse_float(s)


def _parse_int(s: str) -> int:
    s = s.strip()
    if not s:
        raise ValueError("empty value in an integer column")
    if _INT_RE.fullmatch(s):
        v = int(s)
    elif _NUM_RE.fullmatch(s) and float(s).is_integer():
        v = int(float(s))  # integral values written as "5.0" or "1e3" are still integers
    else:
        raise ValueError("not an integer")
    if not -_INT64_MAX - 1 <= v <= _INT64_MAX:
        raise ValueError("integer out of the int64 range")
    return v


def _parse_bool(s: str) -> bool:
    low = s.strip().lower()
    if low not in ("true", "false"):
        raise ValueError("not true/false")
    return low == "true"


def _parse_datetime(s: str) -> datetime.datetime:
    try:
        dt = datetime.datetime.fromisoformat(s.strip())
    except ValueError:
        raise ValueError("not a 'YYYY-MM-DD HH:MM:SS' datetime") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return dt


_PARSERS: dict[str, Callable[[str], object]] = {
    "int": _parse_int, "time": _parse_int, "float": _parse_float, "bool": _parse_bool,
    "datetime": _parse_datetime, "str": str,  # str kept verbatim, as the fast reader does
}
_NUMPY_TYPES = {"int": np.int64, "time": np.int64, "float": np.float64, "bool": np.bool_,
                "datetime": "datetime64[ns]", "str": object}


def _slow_parse(body: bytes, first_line_no: int, layout: CsvLayout, name: str,
                had_final_newline: bool) -> dict[str, np.ndarray]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = first_line_no + body.count(b"\n", 0, exc.start)
        raise MalformedCsv(f"{name}: line {line_no} is not UTF-8 text (byte {body[exc.start]:#04x}): the file "
                           f"is damaged; {_REFETCH}", name, row=line_no) from exc
    lines = text.split("\n")
    cols = layout.columns
    parsers = [_parse_nullable_float if c in layout.nullable_columns else _PARSERS[layout.kind(c)] for c in cols]
    values: list[list[object]] = [[] for _ in cols]
    last = len(lines) - 1

    def truncated_hint(i: int) -> str:
        return (" This is the last line and the file does not end with a newline, so it looks truncated."
                if i == last and not had_final_newline else "")

    for i, line in enumerate(lines):
        line_no = first_line_no + i
        fields = line.rstrip("\r").split(",")
        if len(fields) != len(cols):
            if i == last and (len(fields) < len(cols) or not had_final_newline):
                hint = " This is the last line, so the file looks truncated."
            else:
                hint = ""
            raise MalformedCsv(
                f"{name}: line {line_no} has {len(fields)} fields, expected {len(cols)} ({','.join(cols)}): "
                f"{line[:200]!r}.{hint} {_REFETCH}", name, row=line_no, value=line[:200])
        for j, parse in enumerate(parsers):
            try:
                values[j].append(parse(fields[j]))
            except ValueError as exc:
                raise MalformedCsv(
                    f"{name}: line {line_no}, column {cols[j]!r}: {exc}: {fields[j]!r}.{truncated_hint(i)} "
                    f"{_REFETCH}", name, row=line_no, column=cols[j], value=fields[j]) from None
    return {c: np.array(v, dtype=_NUMPY_TYPES[layout.kind(c)]) for c, v in zip(cols, values)}


def _finish(columns: dict[str, np.ndarray], layout: CsvLayout, name: str, first_line_no: int) -> pd.DataFrame:
    """Shared by both parse paths: value checks that need whole columns, then conversion to pandas."""
    for col in layout.float_columns:
        bad = ~np.isfinite(columns[col])
        if col in layout.nullable_columns:
            bad &= ~np.isnan(columns[col])  # NaN is an empty field here, which the layout allows
        if bad.any():
            i = int(bad.argmax())
            raise MalformedCsv(f"{name}: line {first_line_no + i}, column {col!r}: not a finite number: "
                               f"{columns[col][i]!r}. {_REFETCH}", name, row=first_line_no + i, column=col,
                               value=str(columns[col][i]))
    factor = _time_factor(columns, layout, name, first_line_no)
    out: dict[str, object] = {}
    for col in layout.columns:
        arr = columns[col]
        kind = layout.kind(col)
        if kind == "time":
            out[col] = pd.DatetimeIndex((arr * factor).view("datetime64[ns]")).tz_localize("UTC")
        elif kind == "datetime":
            out[col] = pd.DatetimeIndex(arr.astype("datetime64[ns]")).tz_localize("UTC")
        else:
            out[col] = arr
    return pd.DataFrame(out, columns=list(layout.columns))


def _time_factor(columns: dict[str, np.ndarray], layout: CsvLayout, name: str, first_line_no: int) -> int:
    """Multiplier from the file's epoch unit to ns: 10**6 for ms, 10**3 for µs; mixed units are an error."""
    if not layout.time_columns:
        return 1
    ref_us = bool(columns[layout.time_columns[0]][0] >= _US_THRESHOLD)
    unit = "microseconds" if ref_us else "milliseconds"
    problems: list[tuple[int, str, str]] = []  # (row index, column, reason); the earliest row is reported
    for col in layout.time_columns:
        arr = columns[col]
        implausible = (arr < _EPOCH_MIN_MS) | ((arr > _MAX_MS) & (arr < _US_THRESHOLD)) | (arr > _MAX_US)
        if implausible.any():
            problems.append((int(implausible.argmax()), col,
                             "is not a plausible epoch time in ms (13 digits) or µs (16 digits) "
                             "between 1973 and 2262"))
        mixed = (arr >= _US_THRESHOLD) != ref_us
        if mixed.any():
            problems.append((int(mixed.argmax()), col,
                             f"is in {'milliseconds' if ref_us else 'microseconds'} but line {first_line_no}"
                             f" column {layout.time_columns[0]!r} is in {unit}; a file must use one unit"))
    if problems:
        i, col, reason = min(problems, key=lambda p: p[0])
        raise MalformedCsv(f"{name}: line {first_line_no + i}, column {col!r}: value {int(columns[col][i])} "
                           f"{reason}. {_REFETCH}", name, row=first_line_no + i, column=col,
                           value=str(int(columns[col][i])))
    return 10**3 if ref_us else 10**6
