"""1m order flow from silver.agg_trades, computed inside DuckDB, and klines rebuilt from it compared with silver klines.

A buyer-taker trade (`is_buyer_maker = false`) is buy volume. `trades` counts aggTrades; `trade_count` counts the
exchange trades they aggregate (last_trade_id - first_trade_id + 1), comparable with the klines' `trades`.
`cvd` is the cumulative volume delta (buy - sell volume) since 00:00 UTC of the bar's day: it restarts every day so
that one partition never depends on another. A minute without trades has no row (nothing is invented).
"""

from __future__ import annotations

import duckdb
import pandas as pd

from btc_assets.lib.storage import lakehouse
from btc_assets.lib.storage.warehouse import ensure_table

TABLE = "silver.order_flow_1m"
TYPES = {
    "open_time": "TIMESTAMP", "open": "DOUBLE", "high": "DOUBLE", "low": "DOUBLE", "close": "DOUBLE",
    "buy_volume": "DOUBLE", "sell_volume": "DOUBLE", "buy_quote": "DOUBLE", "sell_quote": "DOUBLE",
    "vwap": "DOUBLE", "trades": "BIGINT", "buy_trades": "BIGINT", "sell_trades": "BIGINT", "trade_count": "BIGINT",
    "mean_trade_size": "DOUBLE", "max_trade_size": "DOUBLE", "delta": "DOUBLE", "cvd": "DOUBLE",
}
_SELECT = """
WITH m AS (
  SELECT date_trunc('minute', transact_time) AS open_time,
    arg_min(price, agg_trade_id) AS open, max(price) AS high, min(price) AS low, arg_max(price, agg_trade_id) AS close,
    coalesce(sum(quantity) FILTER (WHERE NOT is_buyer_maker), 0) AS buy_volume,
    coalesce(sum(quantity) FILTER (WHERE is_buyer_maker), 0) AS sell_volume,
    coalesce(sum(price * quantity) FILTER (WHERE NOT is_buyer_maker), 0) AS buy_quote,
    coalesce(sum(price * quantity) FILTER (WHERE is_buyer_maker), 0) AS sell_quote,
    sum(price * quantity) / sum(quantity) AS vwap,
    count(*) AS trades,
    count(*) FILTER (WHERE NOT is_buyer_maker) AS buy_trades,
    count(*) FILTER (WHERE is_buyer_maker) AS sell_trades,
    sum(last_trade_id - first_trade_id + 1) AS trade_count,
    avg(quantity) AS mean_trade_size, max(quantity) AS max_trade_size
  FROM silver.agg_trades WHERE transact_time >= ? AND transact_time < ?
  GROUP BY 1)
SELECT *, buy_volume - sell_volume AS delta,
  sum(buy_volume - sell_volume) OVER (PARTITION BY date_trunc('day', open_time) ORDER BY open_time) AS cvd
FROM m ORDER BY open_time
"""


def _naive(ts: pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo else ts


STAGE = "order_flow_1m_stage"  # a temporary table of the connection: what a run computed, before it is published


def stage_order_flow(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """The aggregation of silver.agg_trades over [start, end) into the connection's staging table (readers of
    silver.order_flow_1m do not see it); returns rows."""
    s, e = _naive(start), _naive(end)
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} AS SELECT {', '.join(TYPES)} FROM ({_SELECT})", [s, e])
    return conn.execute(f"SELECT count(*) FROM {STAGE}").fetchone()[0]


def publish_staged(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Replace silver.order_flow_1m over [start, end) by the staged rows, in one transaction; returns rows."""
    ensure_table(conn, TABLE, TYPES)
    s, e = _naive(start), _naive(end)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(f"DELETE FROM {TABLE} WHERE open_time >= ? AND open_time < ?", [s, e])
        conn.execute(f"INSERT INTO {TABLE} SELECT {', '.join(TYPES)} FROM {STAGE}")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    lake = lakehouse.ACTIVE.get()
    if lake is not None:  # BTC_LAKEHOUSE_URI: the published window, one commit of its Delta table
        lakehouse.commit_window(lake, TABLE, TYPES, conn.execute(f"SELECT {', '.join(TYPES)} FROM {STAGE}").df(),
                                "open_time", s, e)
    return conn.execute(f"SELECT count(*) FROM {TABLE} WHERE open_time >= ? AND open_time < ?", [s, e]).fetchone()[0]


def build_order_flow(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Replace silver.order_flow_1m over [start, end) by the aggregation of silver.agg_trades; returns rows."""
    stage_order_flow(conn, start, end)
    return publish_staged(conn, start, end)


_COMPARE = """
SELECT k.open_time, k.open AS k_open, f.open AS f_open, k.high AS k_high, f.high AS f_high, k.low AS k_low,
  f.low AS f_low, k.close AS k_close, f.close AS f_close,
  k.volume AS k_volume, f.buy_volume + f.sell_volume AS f_volume,
  k.taker_buy_volume AS k_taker_buy, f.buy_volume AS f_taker_buy, k.trades AS k_trades, f.trade_count AS f_trades
FROM silver.klines_1m k LEFT JOIN {flow} f ON f.open_time = k.open_time
WHERE k.open_time >= ? AND k.open_time < ?
  AND (f.open_time IS NOT NULL OR k.trades > 0)
  AND date_trunc('day', k.open_time) IN (SELECT DISTINCT date_trunc('day', open_time) FROM {flow}
                                        WHERE open_time >= ? AND open_time < ?)
"""


def compare_with_klines(conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp,
                        tol: float = 1e-6, flow: str = TABLE) -> tuple[int, pd.DataFrame]:
    """(minutes compared, mismatching minutes) of klines rebuilt from aggTrades vs silver.klines_1m.

    Compared on the days that have both; within such a day a kline minute with trades but no aggTrades counts as
    a mismatch. Prices and volumes agree within `tol` (float sums of 0.001 steps), trade counts exactly. `flow`:
    the order-flow table to compare (STAGE: what a run computed, before it is published).
    """
    from btc_assets.lib.storage.warehouse import table_exists

    if not table_exists(conn, "silver.klines_1m"):
        return 0, pd.DataFrame()
    s, e = _naive(start), _naive(end)
    df = conn.execute(_COMPARE.format(flow=flow), [s, e, s, e]).df()
    bad = df["f_trades"].isna()
    for name in ("open", "high", "low", "close", "volume", "taker_buy"):
        bad |= (df[f"k_{name}"] - df[f"f_{name}"]).abs() > tol * df[f"k_{name}"].abs().clip(lower=1)
    bad |= df["k_trades"] != df["f_trades"]
    return len(df), df[bad].reset_index(drop=True)
