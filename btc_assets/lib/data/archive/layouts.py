"""The CSV layouts of the archive's datasets: column names as in the archive header, and how each column is typed."""

from __future__ import annotations

from dataclasses import dataclass, field

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
