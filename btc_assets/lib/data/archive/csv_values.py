"""Typing an archive CSV's columns: the line-by-line scan that accepts unusual-but-valid formatting (`5.0` in an
integer column) or names the exact line, column and value that is wrong, and the time unit (ms or µs) detected by
magnitude per file.
"""

from __future__ import annotations

import datetime
import re
from typing import Callable

import numpy as np
import pandas as pd

from btc_assets.lib.data.archive.errors import REFETCH, MalformedCsv
from btc_assets.lib.data.archive.layouts import CsvLayout

NUM_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INT_RE = re.compile(r"[+-]?\d+")
_INT64_MAX = 2**63 - 1
# Epoch bounds: below 1e11 ms is before 1973 (seconds or garbage, not ms); datetime64[ns] ends in 2262.
_EPOCH_MIN_MS = 10**11
_US_THRESHOLD = 10**15
_MAX_MS = _INT64_MAX // 10**6
_MAX_US = _INT64_MAX // 10**3


def _parse_float(s: str) -> float:
    s = s.strip()
    if not s:
        raise ValueError("empty value in a numeric column")
    if not NUM_RE.fullmatch(s):
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
    elif NUM_RE.fullmatch(s) and float(s).is_integer():
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


def slow_parse(body: bytes, first_line_no: int, layout: CsvLayout, name: str,
                had_final_newline: bool) -> dict[str, np.ndarray]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = first_line_no + body.count(b"\n", 0, exc.start)
        raise MalformedCsv(f"{name}: line {line_no} is not UTF-8 text (byte {body[exc.start]:#04x}): the file "
                           f"is damaged; {REFETCH}", name, row=line_no) from exc
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
                f"{line[:200]!r}.{hint} {REFETCH}", name, row=line_no, value=line[:200])
        for j, parse in enumerate(parsers):
            try:
                values[j].append(parse(fields[j]))
            except ValueError as exc:
                raise MalformedCsv(
                    f"{name}: line {line_no}, column {cols[j]!r}: {exc}: {fields[j]!r}.{truncated_hint(i)} "
                    f"{REFETCH}", name, row=line_no, column=cols[j], value=fields[j]) from None
    return {c: np.array(v, dtype=_NUMPY_TYPES[layout.kind(c)]) for c, v in zip(cols, values)}


def finish_columns(columns: dict[str, np.ndarray], layout: CsvLayout, name: str, first_line_no: int) -> pd.DataFrame:
    """Shared by both parse paths: value checks that need whole columns, then conversion to pandas."""
    for col in layout.float_columns:
        bad = ~np.isfinite(columns[col])
        if col in layout.nullable_columns:
            bad &= ~np.isnan(columns[col])  # NaN is an empty field here, which the layout allows
        if bad.any():
            i = int(bad.argmax())
            raise MalformedCsv(f"{name}: line {first_line_no + i}, column {col!r}: not a finite number: "
                               f"{columns[col][i]!r}. {REFETCH}", name, row=first_line_no + i, column=col,
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
                           f"{reason}. {REFETCH}", name, row=first_line_no + i, column=col,
                           value=str(int(columns[col][i])))
    return 10**3 if ref_us else 10**6
