"""pandera schemas of the silver and gold tables: the contract downstream code relies on."""

from __future__ import annotations

import pandera.pandas as pa

from btc_assets.lib.research.features import FEATURES

_price = pa.Column(float, pa.Check.gt(0), nullable=False)
_qty = pa.Column(float, pa.Check.ge(0), nullable=False)

SILVER_KLINES = pa.DataFrameSchema(
    {
        "open_time": pa.Column("datetime64[ns, UTC]", unique=True, nullable=False),
        "open": _price,
        "high": _price,
        "low": _price,
        "close": _price,
        "volume": _qty,
        "quote_volume": _qty,
        "trades": pa.Column(int, pa.Check.ge(0), nullable=False),
        "taker_buy_volume": _qty,
        "taker_buy_quote_volume": _qty,
        "is_halt": pa.Column(bool, nullable=False),
    },
    checks=[
        pa.Check(lambda d: d["high"] >= d[["open", "close", "low"]].max(axis=1), name="high_is_highest"),
        pa.Check(lambda d: d["low"] <= d[["open", "close"]].min(axis=1), name="low_is_lowest"),
        pa.Check(lambda d: d["taker_buy_volume"] <= d["volume"] * (1 + 1e-9), name="taker_buy_within_volume"),
    ],
    strict=True,
    ordered=True,
    name="silver.klines_1m",
)

GOLD_FEATURES = pa.DataFrameSchema(
    {
        "open_time": pa.Column("datetime64[ns, UTC]", unique=True, nullable=False),
        "available_at": pa.Column("datetime64[ns, UTC]", nullable=False),
        # One column per registry entry: null is allowed (before warm-up, absent source); finiteness after the
        # warm-up is the features_finite_after_warmup check's job, which knows each feature's warm-up and sources.
        **{f.name: pa.Column(float, nullable=True, title=f.family, description=f.description) for f in FEATURES},
        "warmed_up": pa.Column(bool, nullable=False),
    },
    checks=[pa.Check(lambda d: d["available_at"] > d["open_time"], name="available_after_open")],
    strict=True,
    name="gold.features",
)


def failure_sample(err: pa.errors.SchemaErrors, n: int = 10) -> list[dict]:
    """The first failing rows of a lazy validation, as plain dicts for check metadata."""
    cases = err.failure_cases.head(n)
    return [{k: str(v) for k, v in row.items()} for row in cases.to_dict(orient="records")]
