"""The trading assets' specs and run tags, shared by the step that computes them, its checks and the sensor."""

import dagster as dg

from btc_assets.defs import partitions
from btc_assets.defs.trading.market import LIVE_BARS
from btc_assets.lib.research.models.registry import TRADING_FAMILY

# epoch seconds (this machine's clock) when the run's last bar closed on the feed's clock, set by the sensor; every
# bar's age is measured from its own close: REQUESTED_AT - (last bar - bar) / CLOCK_SPEED
REQUESTED_AT = "btc/requested_at"
CLOCK_SPEED = "btc/clock_speed"  # feed seconds per machine second (the replay's speed; 1 for live feeds)
MODEL_KEY = ["models", "ensemble" if TRADING_FAMILY == "ensemble" else f"{TRADING_FAMILY}_model"]

DECISIONS = dg.AssetSpec(
    ["trading", "decisions"],
    deps=[dg.AssetDep(["silver", "klines_1m"], partition_mapping=partitions.warmup_mapping), LIVE_BARS.key,
          dg.AssetDep(MODEL_KEY, partition_mapping=dg.TimeWindowPartitionMapping())],
    group_name="trading",
    kinds={"duckdb"},
    description="One decision per closed 1m bar: point-in-time features -> promoted model of the week -> signal -> "
    "the risk rules' plan (entry with Kelly size and ATR stop, exits, breaker, skip reason). Journal table "
    "trading.decisions. A week without a promoted model fails the run (no fallback).",
)
ORDERS = dg.AssetSpec(
    ["trading", "orders"],
    deps=[DECISIONS.key],
    group_name="trading",
    kinds={"duckdb"},
    description="Orders for the run's decisions through the configured broker (paper by default: the backtest's "
    "fill model on the live bars; Binance testnet or live on explicit opt-in), from the append-only journal "
    "trading.order_events. Reconciled with the broker at the start of the run and after it.",
)
