"""Gold: point-in-time features per 1m bar (warmed up from previous days) and the forward-looking labels.

The feature logic lives in btc_assets/lib/research/features (the window it reads: features/window.py); this
module loads its inputs, stores gold.features and reports the checks (btc_assets/defs/gold/feature_checks.py).
"""


import time

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.gold import feature_checks
from btc_assets.defs.publish import publish, window_writer
from btc_assets.defs.table_metadata import frame_table, per_partition, table_metadata
from btc_assets.lib.research.features import (FAMILIES, FEATURE_NAMES, FEATURES, audit, checks,
                                              compute_features, null_reasons, pit)
from btc_assets.lib.research.features.window import EXTRA_SOURCES, WARMUP, load_bars
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.labels import DEFAULT_HORIZON, LabelConfig, balance_by_partition, class_balance
from btc_assets.lib.research.models.decision import round_trip_cost, typical_sigma_1m
from btc_assets.lib.storage.warehouse import read_window, replace_window, table_exists

FEATURE_TYPES = {"open_time": "TIMESTAMP", "available_at": "TIMESTAMP", **{n: "DOUBLE" for n in FEATURE_NAMES},
                 "warmed_up": "BOOLEAN"}
LABEL_TYPES = {"open_time": "TIMESTAMP", "fwd_return": "DOUBLE", "label": "TINYINT", "horizon_minutes": "SMALLINT"}
MINUTE = pd.Timedelta(minutes=1)
# Lineage of the extra sources (read only when their table exists; absent ones give nulls with a reason).
# Funding is monthly: the day's window, widened by the warm-up, maps to the months it touches.
SOURCE_DEPS = [
    dg.AssetDep(["silver", s.name], partition_mapping=(
        dg.TimeWindowPartitionMapping(start_offset=-2 * partitions.WARMUP_DAYS,
                                      allow_nonexistent_upstream_partitions=True) if s.name == "funding_rates"
        else partitions.warmup_mapping))
    for s in EXTRA_SOURCES if not s.live_only
]


@dg.asset(
    key=["gold", "features"],
    ins={
        "k1m": dg.AssetIn(["silver", "klines_1m"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k5m": dg.AssetIn(["silver", "klines_5m"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k15m": dg.AssetIn(["silver", "klines_15m"], partition_mapping=partitions.warmup_mapping,
                           dagster_type=dg.Nothing),
        "k1h": dg.AssetIn(["silver", "klines_1h"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k4h": dg.AssetIn(["silver", "klines_4h"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k1d": dg.AssetIn(["silver", "klines_1d"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
    },
    deps=SOURCE_DEPS,
    group_name="gold",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    check_specs=feature_checks.SPECS,
    description=f"{len(FEATURES)} point-in-time features per 1m bar in {len(FAMILIES)} families (docs/FEATURES.md); "
    "every source joined as of its availability time; reads the previous days its warm-up needs. "
    "Table gold.features.",
)
def features(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    # The warehouse is held only to read and to write (other runs use it in between).
    with warehouse.get_connection() as conn:
        # Twice the warm-up: the stored values start at start - WARMUP; the extra history only serves the
        # warm-up confirmation check.
        one, higher = load_bars(conn, start - 2 * WARMUP, end)
    frames = checks.frames_of(one, higher, None)
    used = pit.cut_from(frames, start - WARMUP)
    used_one = used.pop("klines_1m")
    t0 = time.perf_counter()
    full = compute_features(used_one, {k.removeprefix("klines_"): v for k, v in used.items()})
    compute_s = time.perf_counter() - t0
    i0, i1 = full["open_time"].searchsorted([start, end])  # rows are in time order: slice, no mask copy
    out = full.iloc[i0:i1].reset_index(drop=True)
    reasons = null_reasons({k.removeprefix("klines_"): v for k, v in used.items()}, None)
    # an archive source that is absent is said in the console too (a klines-only warehouse is a normal start),
    # not only in the metadata; a live-only source (liquidations) is absent from every archive build by nature
    missing = {k: v for k, v in reasons.items() if not pit.SOURCES[k].live_only}
    if missing:
        nulls = [f.name for f in FEATURES if set(f.sources) & set(missing)]
        context.log.warning(f"gold/features {context.partition_key_range.start}..{context.partition_key_range.end}"
                            f": {len(nulls)} of {len(FEATURES)} features are null because their sources are "
                            f"absent: {'; '.join(f'{k}: {v}' for k, v in missing.items())}")
    seed = int(start.timestamp())
    t0 = time.perf_counter()
    observed = audit.observe(used | {"klines_1m": used_one})  # availability from the data, not pit.SOURCES
    pit_checks = [feature_checks.availability(frames, observed),
                  feature_checks.point_in_time(out, observed, start, end, seed)]
    pit_s = time.perf_counter() - t0
    results = [feature_checks.schema(out), feature_checks.finite(full, set(reasons), len(out)), *pit_checks,
               feature_checks.warmup(out, frames, seed),
               feature_checks.drift_warning(full, start, end)]
    written, visible = publish(feature_checks.SPECS, results, window_writer(
        warehouse, "gold.features", FEATURE_TYPES, out, "open_time", start, end), len(out))
    warm = int(out["warmed_up"].sum())
    per_partition(context, out, "open_time", visible["written"],
                  extra=lambda day: {"warmed_up_rows": int(day["warmed_up"].sum())})
    yield dg.MaterializeResult(metadata={
        **table_metadata(out, {f.name: f.description for f in FEATURES}),
        "rows": written, **visible, "features": len(FEATURES), "warmed_up_rows": warm,
        "compute_seconds": round(compute_s, 3), "point_in_time_checks_seconds": round(pit_s, 3),
        "first_bar": str(out["open_time"].min()) if len(out) else "",
        "history_read_from": str(start - WARMUP),
        "features_per_family": {fam: sum(f.family == fam for f in FEATURES) for fam in FAMILIES},
        "null_sources": reasons,
        "null_features": len([f for f in FEATURES if set(f.sources) & set(reasons)]),
        "feature_list": frame_table(pd.DataFrame(
            [{"name": f.name, "family": f.family, "warm-up (1m bars)": f.warmup_bars_1m, "description": f.description}
             for f in FEATURES])),
    })
    yield from results


def label_threshold(config, trading: TradingResource, bars: pd.DataFrame) -> tuple[pd.Series, str]:
    """The next-return label's threshold per UTC day of `bars` and how it was set: the configured number, or the
    round-trip cost at that day's typical volatility (per day, so a backfill in one run labels as day by day)."""
    days = bars["open_time"].dt.floor("D")
    if config.threshold is not None:
        if not config.threshold > 0:
            raise dg.Failure(f"gold/labels threshold={config.threshold}: use a positive fraction (0.0012 = 0.12 %) or "
                             "leave it unset for the round-trip cost of the trading settings")
        return pd.Series(float(config.threshold), index=days.unique()), f"configured: ±{config.threshold:.4%}"
    c = trading.costs()
    sigma = bars.groupby(days)["close"].apply(typical_sigma_1m)
    cost = sigma.map(lambda s: round_trip_cost(c.taker_fee, c.slippage_bps, c.slippage_vol_mult, s))
    return cost, (f"round-trip cost = 2 x taker {c.taker_fee:.3%} + 2 x slippage {c.slippage_bps:g} bp + 2 x "
                  f"{c.slippage_vol_mult:g} x the day's typical 1m volatility (median 60-minute std): "
                  f"{cost.min():.4%} .. {cost.max():.4%} here; set threshold to override")


class LabelsConfig(dg.Config):
    """Which label gold/labels stores (lib/labels.py); every model purges by the stored horizon_minutes."""

    kind: str = "next_return"  # or "triple_barrier"
    horizon: int = DEFAULT_HORIZON  # minutes (the triple barrier's time limit)
    # None: the round trip of the trading settings (2 taker fees + 2 expected slippages at the day's typical 1m
    # volatility), so that a BUY/SELL label is a move a trade would have earned after costs; a number overrides it.
    threshold: float | None = None
    take_profit_atr: float = 2.0
    stop_loss_atr: float = 2.0


@dg.asset(
    key=["gold", "labels"],
    ins={"k1m": dg.AssetIn(["silver", "klines_1m"], partition_mapping=partitions.next_day_mapping,
                           dagster_type=dg.Nothing)},
    group_name="gold",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    description=f"Next-{DEFAULT_HORIZON}-minute return beyond ± the round-trip cost (fees + expected slippage of the "
    "trading settings, stated per partition; configurable): BUY (2) / SELL (0) / HOLD (1); "
    "or, by config, the triple-barrier label (ATR-scaled take-profit/stop, time limit). Null where the future "
    "is not known yet. Looks ahead by design (horizon_minutes says how far). Table gold.labels.",
)
def labels(context: dg.AssetExecutionContext, config: LabelsConfig, warehouse: DuckDBResource,
           trading: TradingResource) -> dg.MaterializeResult:
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    # The triple barrier's ATR is computed from the bars before the day (known at each bar's close).
    lookback = pd.Timedelta(hours=6) if config.kind == "triple_barrier" else pd.Timedelta(0)
    with warehouse.get_connection() as conn:  # held to read and to write, not while labelling
        one = read_window(conn, "silver.klines_1m", "open_time", start - lookback,
                          end + pd.Timedelta(minutes=config.horizon))
    one = one.sort_values("open_time").reset_index(drop=True)
    day_threshold, rule = label_threshold(config, trading, one)
    threshold = day_threshold.reindex(one["open_time"].dt.floor("D")).to_numpy()  # a row's own day's threshold
    cfg = LabelConfig(kind=config.kind, horizon=config.horizon, threshold=threshold,
                      take_profit=config.take_profit_atr, stop_loss=config.stop_loss_atr)
    lab = cfg.make(one)
    lab = lab[(lab["open_time"] >= start) & (lab["open_time"] < end)].copy()
    lab["horizon_minutes"] = cfg.horizon
    with warehouse.get_connection() as conn:
        if table_exists(conn, "gold.labels"):  # a warehouse from before horizon_minutes existed
            conn.execute("ALTER TABLE gold.labels ADD COLUMN IF NOT EXISTS horizon_minutes SMALLINT")
        written = replace_window(conn, "gold.labels", LABEL_TYPES, lab, "open_time", start, end)
    per_day = balance_by_partition(lab)
    balance = class_balance(lab["label"])
    per_partition(context, lab, "open_time", True, extra=lambda day: {
        "unknown_future": int(day["label"].isna().sum()),
        **{f"share_{k}": v for k, v in class_balance(day["label"]).items()}})
    return dg.MaterializeResult(
        metadata={**table_metadata(lab), "rows": written, "unknown_future": int(lab["label"].isna().sum()), "label_kind": cfg.kind,
                  "horizon_minutes": cfg.horizon,
                  **({"label_threshold": float(day_threshold[(day_threshold.index >= start)
                                                                 & (day_threshold.index < end)].mean()),
                      "label_threshold_rule": rule} if cfg.kind == "next_return" else {}),
                  **{f"share_{k}": v for k, v in balance.items()},
                  "class_balance_per_day": frame_table(per_day.rename_axis("day").reset_index(),
                                                       percent=set(per_day.columns) - {"n"}) if len(per_day) else ""}
    )
