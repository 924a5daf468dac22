"""Gold: point-in-time features per 1m bar (warmed up from previous days) and the forward-looking labels."""


import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.lib import schemas
from btc_assets.lib.features import FEATURE_NAMES, FEATURES, compute_features
from btc_assets.lib.labels import class_balance, next_return_labels
from btc_assets.lib.warehouse import read_window, replace_window

FEATURE_TYPES = {"open_time": "TIMESTAMP", "available_at": "TIMESTAMP", **{n: "DOUBLE" for n in FEATURE_NAMES},
                 "warmed_up": "BOOLEAN"}
LABEL_TYPES = {"open_time": "TIMESTAMP", "fwd_return": "DOUBLE", "label": "TINYINT"}
# Null by definition in some bars (no volume in a halt, flat volume window), not because of missing data.
NULLABLE_FEATURES = {"taker_buy_ratio", "taker_buy_ratio_15", "volume_z_60", "bb_position"}
LABEL_HORIZON = 3
LABEL_THRESHOLD = 0.001
WARMUP = pd.Timedelta(days=partitions.WARMUP_DAYS)


def load_bars(conn, start: pd.Timestamp, end: pd.Timestamp) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """1m bars and the 5m/15m/1h bars with open_time in [start, end)."""
    one = read_window(conn, "silver.klines_1m", "open_time", start, end)
    higher = {i: read_window(conn, f"silver.klines_{i}", "open_time", start, end) for i in ("5m", "15m", "1h")}
    return one, higher


def features_until(one: pd.DataFrame, higher: dict[str, pd.DataFrame], cutoff: pd.Timestamp) -> pd.DataFrame:
    """Features computed only from bars known by `cutoff` (a bar is known at its close)."""
    step = {"5m": "5min", "15m": "15min", "1h": "1h"}
    h = {i: df[df["open_time"] + pd.Timedelta(step[i]) <= cutoff] for i, df in higher.items()}
    return compute_features(one[one["open_time"] + pd.Timedelta(minutes=1) <= cutoff], h)


@dg.asset(
    key=["gold", "features"],
    ins={
        "k1m": dg.AssetIn(["silver", "klines_1m"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k5m": dg.AssetIn(["silver", "klines_5m"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
        "k15m": dg.AssetIn(["silver", "klines_15m"], partition_mapping=partitions.warmup_mapping,
                           dagster_type=dg.Nothing),
        "k1h": dg.AssetIn(["silver", "klines_1h"], partition_mapping=partitions.warmup_mapping, dagster_type=dg.Nothing),
    },
    group_name="gold",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
    kinds={"duckdb"},
    check_specs=[
        dg.AssetCheckSpec("features_match_schema", asset=["gold", "features"], blocking=True),
        dg.AssetCheckSpec("features_finite_after_warmup", asset=["gold", "features"], blocking=True,
                          description="No NaN or infinity once warmed up (except features null by definition)."),
        dg.AssetCheckSpec("features_point_in_time", asset=["gold", "features"], blocking=True,
                          description="At sampled cut-offs, features computed from data up to the cut-off equal "
                                      "the stored ones: nothing looks ahead."),
    ],
    description=f"{len(FEATURES)} point-in-time features per 1m bar; higher timeframes joined as of their close. "
    "Table gold.features.",
)
def features(context: dg.AssetExecutionContext, warehouse: DuckDBResource):
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    with warehouse.get_connection() as conn:
        one, higher = load_bars(conn, start - WARMUP, end)
        full = compute_features(one, higher)
        out = full[(full["open_time"] >= start) & (full["open_time"] < end)].reset_index(drop=True)
        written = replace_window(conn, "gold.features", FEATURE_TYPES, out, "open_time", start, end)
    warm = out[out["warmed_up"]]
    yield dg.MaterializeResult(
        metadata={
            "rows": written,
            "features": len(FEATURES),
            "warmed_up_rows": len(warm),
            "first_bar": str(out["open_time"].min()) if written else "",
            "feature_list": dg.MetadataValue.md(
                "| name | family | description |\n|---|---|---|\n"
                + "\n".join(f"| {f.name} | {f.family} | {f.description} |" for f in FEATURES)
            ),
        }
    )
    yield _schema_check(out)
    strict = [c for c in FEATURE_NAMES if c not in NULLABLE_FEATURES]
    values = warm[strict].to_numpy("float64")
    bad_cols = [c for c, bad in zip(strict, ~np.isfinite(values).all(axis=0)) if bad]
    yield dg.AssetCheckResult(
        check_name="features_finite_after_warmup", passed=not bad_cols,
        metadata={"columns_with_nan_or_inf": bad_cols, "rows_checked": len(warm)},
    )
    yield _point_in_time_check(one, higher, out)


def _schema_check(df: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.GOLD_FEATURES.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        return dg.AssetCheckResult(check_name="features_match_schema", passed=False,
                                   metadata={"sample": schemas.failure_sample(err)})
    return dg.AssetCheckResult(check_name="features_match_schema", passed=True)


def _point_in_time_check(one, higher, out: pd.DataFrame, samples: int = 3) -> dg.AssetCheckResult:
    if out.empty:
        return dg.AssetCheckResult(check_name="features_point_in_time", passed=True, metadata={"cutoffs": 0})
    rng = np.random.default_rng(int(out["open_time"].iloc[0].timestamp()))
    rows = sorted(rng.choice(len(out), size=min(samples, len(out)), replace=False))
    mismatched: list[str] = []
    for i in rows:
        row = out.iloc[i]
        recomputed = features_until(one, higher, row["available_at"]).iloc[-1]
        for name in FEATURE_NAMES:
            a, b = row[name], recomputed[name]
            if not (np.isclose(a, b, rtol=1e-9, atol=1e-12) or (np.isnan(a) and np.isnan(b))):
                mismatched.append(f"{name} at {row['open_time']}: stored {a!r} vs point-in-time {b!r}")
    return dg.AssetCheckResult(
        check_name="features_point_in_time", passed=not mismatched,
        metadata={"cutoffs": [str(out.iloc[i]["open_time"]) for i in rows], "mismatches": mismatched[:20]},
    )


@dg.asset(
    key=["gold", "labels"],
    ins={"k1m": dg.AssetIn(["silver", "klines_1m"], partition_mapping=partitions.next_day_mapping,
                           dagster_type=dg.Nothing)},
    group_name="gold",
    partitions_def=partitions.daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="duckdb",
    kinds={"duckdb"},
    description=f"Next-{LABEL_HORIZON}-minute return beyond ±{LABEL_THRESHOLD:.1%}: BUY (2) / SELL (0) / HOLD (1); "
    "null where the future bar is not known yet. Looks ahead by design. Table gold.labels.",
)
def labels(context: dg.AssetExecutionContext, warehouse: DuckDBResource) -> dg.MaterializeResult:
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    with warehouse.get_connection() as conn:
        one = read_window(conn, "silver.klines_1m", "open_time", start, end + pd.Timedelta(minutes=LABEL_HORIZON))
        lab = next_return_labels(one, horizon=LABEL_HORIZON, threshold=LABEL_THRESHOLD)
        lab = lab[(lab["open_time"] >= start) & (lab["open_time"] < end)]
        written = replace_window(conn, "gold.labels", LABEL_TYPES, lab, "open_time", start, end)
    balance = class_balance(lab["label"])
    return dg.MaterializeResult(
        metadata={"rows": written, "unknown_future": int(lab["label"].isna().sum()),
                  **{f"share_{k}": v for k, v in balance.items()}}
    )
