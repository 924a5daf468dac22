"""Silver tables only the live collector can provide: liquidations (forceOrder) and the live top of book
(depth20@100ms). The archive has neither, so these exist only for days the collector ran.

silver.liquidations: time, side, price, quantity (+ average_price, status, received_at) — the columns the
feature store's `liquidations` source reads. Binance sends at most the latest liquidation per symbol per second,
so this is a sample of liquidations, not all of them (the metadata says so).
silver.order_book_live: one top-of-book row per 100 ms update: best bid/ask and sizes, mid, spread, summed depth,
the levels present and the levels the stream promises.

Hour files a collector crash cut short are read up to the cut (bronze/stream_recordings reports the cut and keeps
its tail in the dead-letter table). The checks (lib/collector/quality.py) block on bad values, duplicates, times
out of order and a crossed book; the gaps the collector recorded are a warning.
"""


import datetime as dt
from collections.abc import Iterator

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.publish import publish
from btc_assets.defs.resources.sources import read_recording
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.lib.data.collector import quality, tables
from btc_assets.lib.storage.warehouse import replace_window


def _hour_files(kind: str, day: dt.date) -> list[str]:
    """Lake relpaths of the day's hour files plus the hour either side (events are keyed on event time)."""
    prev, nxt = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    names = [(prev, "23")] + [(day, f"{h:02d}") for h in range(24)] + [(nxt, "00")]
    return [f"bronze/streams/{kind}/{d}/{kind}-{d}-{h}.jsonl.gz" for d, h in names]


def _records(lake: LakeResource, kinds: tuple[str, ...], day: dt.date) -> tuple[list, int, int]:
    """(file, line, record) of every complete record, files read, and crash-cut files (read up to the cut)."""
    out, files, cut = [], 0, 0
    for kind in kinds:
        for rel in _hour_files(kind, day):
            try:
                content = lake.read_bytes(rel)
            except FileNotFoundError:
                continue
            files += 1
            got = read_recording(content, rel)
            cut += bool(got.truncations)
            out += [(rel, line, rec) for line, rec in got.records]
    return out, files, cut


def _checks(prefix: str, blocking: dict[str, str]) -> list[dg.AssetCheckSpec]:
    asset = ["silver", prefix]
    return [dg.AssetCheckSpec(f"{prefix}_{name}", asset=asset, blocking=True, description=what)
            for name, what in blocking.items()] + [dg.AssetCheckSpec(
                f"{prefix}_has_no_recorded_gaps", asset=asset,
                description="The collector recorded no gap in the day's streams (a warning: the day is partial).")]


def _result(prefix: str, name: str, finding: quality.Finding, fix: str,
            severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=f"{prefix}_{name}", passed=finding.passed, severity=severity,
                               metadata={**finding.counts, "sample": dg.MetadataValue.md(finding.sample_md())},
                               description=None if finding.passed else fix)


def _materialize(context, lake: LakeResource, warehouse: DuckDBResource, kinds: tuple[str, ...], table: str,
                 types: dict, typer, note: str, specs: list[dg.AssetCheckSpec]):
    day = dt.date.fromisoformat(context.partition_key)
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    records, files, cut = _records(lake, kinds, day)
    typed = typer(records)
    df = tables.in_window(typed.frame, start, end)
    if typed.rejected:
        context.log.warning(f"{table} {context.partition_key}: {len(typed.rejected)} records could not be typed, "
                            f"first: {typed.rejected[0]}")
    gaps, _, _ = _records(lake, ("gaps",), day)
    meta = {
        "files_read": files, "files_cut_by_a_crash": cut, "rejected": len(typed.rejected),
        "rejected_sample": dg.MetadataValue.md("\n".join(f"- {r}" for r in typed.rejected[:20]) or "none"),
        "first": str(df["time"].min()) if len(df) else "none", "last": str(df["time"].max()) if len(df) else "none",
        "preview": dg.MetadataValue.md(df.head(10).to_markdown(index=False) if len(df) else "no rows"),
        "note": note,
    }

    def write(checks: list[dg.AssetCheckResult]) -> dg.MaterializeResult:
        """Publish the day only if its blocking checks passed; the materialization says which happened."""
        with warehouse.get_connection() as conn:
            written, visible = publish(
                specs, checks, lambda: replace_window(conn, table, types, df, "time", start, end), len(df))
        per_partition(context, df, "time", visible["written"])
        return dg.MaterializeResult(metadata={**table_metadata(df), "rows": written, **visible, **meta})

    back = typed.back_in_file
    back = back[(back["time"] >= start) & (back["time"] < end)] if len(back) else back
    return df, back, write, quality.recorded_gaps([rec for _, _, rec in gaps], start, end)


LIQUIDATION_CHECKS = _checks("liquidations", {
    "match_schema": "Types and values: side BUY/SELL, price, quantity and average price > 0.",
    "have_no_duplicates": "No liquidation event appears twice (same time, side, price, quantity).",
    "times_in_order": "Event times never go back in the order the collector recorded them, and no "
                      f"event is received more than {quality.CLOCK_SKEW} before it happened."})
BOOK_CHECKS = _checks("order_book_live", {
    "match_schema": "Types and values: prices and sizes > 0, every level the stream promises present.",
    "not_crossed": "Best bid below best ask in every snapshot.",
    "have_no_duplicates": "No update (last_update_id) appears twice.",
    "times_in_order": "Event times never go back in recorded order, update ids never go back in time; "
                      "nothing received before it happened."})
GAPS_FIX = "the collector was disconnected: the day is partial (see the gap list); nothing to fix afterwards"


@dg.asset(key=["silver", "liquidations"], deps=[dg.AssetKey(["bronze", "stream_recordings"])], group_name="silver",
          partitions_def=partitions.daily, kinds={"duckdb"},
          check_specs=LIQUIDATION_CHECKS,
          description="Liquidations from the forceOrder stream (live only): time, side, price, quantity. "
                      "Table silver.liquidations.")
def liquidations(context: dg.AssetExecutionContext, lake: LakeResource,
                 warehouse: DuckDBResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    df, back, write, gaps = _materialize(
        context, lake, warehouse, ("forceOrder",), "silver.liquidations", tables.LIQUIDATION_TYPES,
        tables.liquidations, "forceOrder sends at most one liquidation per symbol per second: a sample, undercounted",
        LIQUIDATION_CHECKS)
    p = "liquidations"
    checks = [
        _result(p, "match_schema", quality.matches_schema(df, quality.LIQUIDATIONS),
                "liquidations with impossible values: inspect the forceOrder hour files named in the sample"),
        _result(p, "have_no_duplicates", quality.no_duplicates(df, ["time", "side", "price", "quantity"]),
                "events recorded twice: were two collectors writing to the same folder? Remove the duplicate "
                "recording and rematerialize bronze/stream_recordings and this partition"),
        _result(p, "times_in_order", quality.times_in_order(df, back),
                "event times out of order or ahead of receipt: check the collector host's clock (NTP)"),
        _result(p, "has_no_recorded_gaps", gaps, GAPS_FIX, dg.AssetCheckSeverity.WARN),
    ]
    yield write(checks)
    yield from checks


@dg.asset(key=["silver", "order_book_live"], deps=[dg.AssetKey(["bronze", "stream_recordings"])],
          group_name="silver", partitions_def=partitions.daily, kinds={"duckdb"},
          check_specs=BOOK_CHECKS,
          description="Live top of book from depth20@100ms (live only): best bid/ask, sizes, mid, spread, summed "
                      "depth. Table silver.order_book_live.")
def order_book_live(context: dg.AssetExecutionContext, lake: LakeResource,
                    warehouse: DuckDBResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    df, back, write, gaps = _materialize(
        context, lake, warehouse, ("depth20", "depth10"), "silver.order_book_live", tables.ORDER_BOOK_TYPES,
        tables.order_book, "partial book depth, 100 ms updates, as recorded by the collector", BOOK_CHECKS)
    p = "order_book_live"
    checks = [
        _result(p, "match_schema", quality.matches_schema(df, quality.ORDER_BOOK_LIVE),
                "snapshots with impossible values or missing levels: inspect the depth hour files"),
        _result(p, "not_crossed", quality.not_crossed(df),
                "crossed snapshots (bid >= ask): the recording is corrupt or the stream mixed symbols"),
        _result(p, "have_no_duplicates", quality.no_duplicates(df, ["last_update_id"]),
                "updates recorded twice: were two collectors writing to the same folder? Remove the duplicate "
                "recording and rematerialize bronze/stream_recordings and this partition"),
        _result(p, "times_in_order", quality.times_in_order(df, back, "last_update_id"),
                "updates out of order: check the collector host's clock (NTP) and the recording"),
        _result(p, "has_no_recorded_gaps", gaps, GAPS_FIX, dg.AssetCheckSeverity.WARN),
    ]
    yield write(checks)
    yield from checks
