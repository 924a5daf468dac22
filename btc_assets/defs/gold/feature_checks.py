"""The gold/features checks as AssetCheckResults: schema, finiteness, point in time, warm-up and drift.

Each runs on what the asset already has in memory and recomputes only bounded windows (the warm-up plus the
cut-off), so the blocking ones can run on every materialization, including the single-run 60-day backfill.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from btc_assets.lib.data import schemas
from btc_assets.lib.research.features import WARMUP_BARS_1M, audit, checks, drift, pit

ASSET = ["gold", "features"]
PIT_CUTOFFS = 1  # sampled cut-offs per UTC day of the partition window, where every family is recomputed
SPECS = [
    dg.AssetCheckSpec("features_match_schema", asset=ASSET, blocking=True,
                      description="pandera schema generated from the feature registry."),
    dg.AssetCheckSpec("features_finite_after_warmup", asset=ASSET, blocking=True,
                      description="No infinity anywhere; no NaN after a feature's own warm-up unless it is null by "
                                  "definition or its source is absent."),
    dg.AssetCheckSpec("features_availability_observed", asset=ASSET, blocking=True,
                      description="Every row of every source: the availability measured from the data itself (a "
                                  "bar after open + the table's own spacing, metrics after the window their taker "
                                  "ratio describes) is not later than the declared one (pit.SOURCES)."),
    dg.AssetCheckSpec("features_point_in_time", asset=ASSET, blocking=True,
                      description="Features recomputed from silver physically cut by the data's own timestamps "
                                  "(never by the declarations) equal the stored ones: just before and just after "
                                  "every 5m/15m/1h close of the partition (features of those bars and metrics) and "
                                  f"at {PIT_CUTOFFS} sampled cut-off per day (every family)."),
    dg.AssetCheckSpec("features_warmup_confirmed", asset=ASSET, blocking=True,
                      description="At a sampled cut-off, each warm-up group recomputed from exactly its declared "
                                  "warm-up equals the same features recomputed from a longer history."),
    dg.AssetCheckSpec("features_drift", asset=ASSET, blocking=False,
                      description=f"PSI of each day against the {drift.REFERENCE_DAYS} days before it; features "
                                  f"above {drift.PSI_DRIFT} and {drift.RELATIVE:g}x their usual PSI are named "
                                  "(warning)."),
]


def schema(df: pd.DataFrame) -> dg.AssetCheckResult:
    try:
        schemas.GOLD_FEATURES.validate(df, lazy=True)
    except pa.errors.SchemaErrors as err:
        return dg.AssetCheckResult(check_name="features_match_schema", passed=False,
                                   metadata={"sample": schemas.failure_sample(err)})
    return dg.AssetCheckResult(check_name="features_match_schema", passed=True)


def finite(full: pd.DataFrame, absent: set[str], rows: int) -> dg.AssetCheckResult:
    bad = checks.not_finite_after_warmup(full, absent)
    return dg.AssetCheckResult(check_name="features_finite_after_warmup", passed=not bad,
                               metadata={"bad_rows_by_feature": bad, "rows_checked": rows,
                                         "absent_sources": sorted(absent)})


def availability(frames: dict, observed: audit.Observed) -> dg.AssetCheckResult:
    leaks = audit.declaration_leaks(frames, observed, pit.SOURCES)
    return dg.AssetCheckResult(
        check_name="features_availability_observed", passed=not leaks,
        metadata={"leaks": leaks, "observed": dict(observed.rules),
                  "declared": {n: s.rule for n, s in pit.SOURCES.items() if n in observed.rules}},
        description=None if not leaks else "a source is declared available before its data says it can be: "
        "features would read the future; fix btc_assets/lib/research/features/pit.py SOURCES",
    )


def point_in_time(out: pd.DataFrame, observed: audit.Observed, start: pd.Timestamp, end: pd.Timestamp,
                  seed: int) -> dg.AssetCheckResult:
    sampled = checks.daily_cutoffs(out["open_time"], PIT_CUTOFFS, seed)
    mismatches, covered = audit.recompute_mismatches(out, observed, start, end, sampled, checks.TOLERANCE)
    named = sorted({m.split(" ", 1)[0] for m in mismatches})
    return dg.AssetCheckResult(
        check_name="features_point_in_time", passed=not mismatches,
        metadata={**covered, "sampled": [str(t) for t in sampled], "mismatches": len(mismatches),
                  "features_mismatching": named, "first_mismatches": mismatches[:20],
                  "tolerance": str(checks.TOLERANCE)},
        description=None if not mismatches else f"look-ahead: {', '.join(named[:8])} differ when recomputed from "
        "only the data known at the cut-off",
    )


def warmup(out: pd.DataFrame, frames: dict, seed: int) -> dg.AssetCheckResult:
    if out.empty:
        return dg.AssetCheckResult(check_name="features_warmup_confirmed", passed=True, metadata={"cutoff": ""})
    t = checks.sample_cutoffs(out["open_time"], 1, seed)[0]
    first = frames["klines_1m"]["open_time"].iloc[0]
    longer = min(2 * WARMUP_BARS_1M, int((t - first) / pd.Timedelta(minutes=1)))
    mismatches = checks.warmup_confirmation(frames, t, longer)
    return dg.AssetCheckResult(
        check_name="features_warmup_confirmed", passed=not mismatches,
        metadata={"cutoff": str(t), "longer_history_bars": longer, "mismatches": mismatches[:20],
                  "note": "warm-up groups at or above the longer history are not confirmable here"
                  if longer < WARMUP_BARS_1M else "every warm-up group compared"},
    )


def drift_warning(full: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dg.AssetCheckResult:
    days = list(pd.date_range(start, end, freq="D", inclusive="left"))
    by_day = drift.drift_by_day(full, days)
    drifting = {d: sorted(f) for d, f in by_day.items() if f}
    return dg.AssetCheckResult(
        check_name="features_drift", passed=not drifting, severity=dg.AssetCheckSeverity.WARN,
        metadata={"days_compared": len(by_day), "days_with_drift": len(drifting), "psi_threshold": drift.PSI_DRIFT,
                  "relative_threshold": drift.RELATIVE,
                  "drifting_features_by_day": {d: ", ".join(f[:15]) + (" ..." if len(f) > 15 else "")
                                               for d, f in list(drifting.items())[:31]}},
    )
