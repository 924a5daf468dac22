"""Silver book depth, metrics and mark/index/premium 1m prices from their bronze archive files.

Tables silver.book_depth, silver.metrics, silver.mark_price_1m, silver.index_price_1m, silver.premium_index_1m;
all time columns TIMESTAMP (UTC wall time). Each asset parses its days from the lake, types and validates them in
btc_assets.lib.data.market, replaces its window in DuckDB and reports its checks.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.publish import publish
from btc_assets.lib.data.market.datasets import archive_file
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.silver.order_flow import synthetic_files
from btc_assets.defs.table_metadata import per_partition, table_metadata
from btc_assets.lib.data.archive.layouts import BOOK_DEPTH, KLINES, METRICS, CsvLayout
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.market import book_depth as lib_depth
from btc_assets.lib.data.market import day_window
from btc_assets.lib.data.market import metrics as lib_metrics
from btc_assets.lib.data.market import price_klines as lib_prices
from btc_assets.lib.storage.warehouse import read_window, replace_window, table_exists


def _read_days(context, name: str, layout: CsvLayout, archive: ArchiveResource, lake: LakeResource, parse):
    """Parse every day of the run from the lake with `parse(raw, day, source)`; returns (days, results, relpaths)."""
    days = partitions.days_of(context)
    out, relpaths = [], []
    for day in days:
        f = archive_file(name, archive.symbol, day)
        relpaths.append(f.relpath)
        raw = read_archive_csv(lake.read_bytes(f"bronze/{f.relpath}"), f.filename, layout)
        out.append(parse(raw, day, f"{f.filename} (partition {day})"))
    return days, out, relpaths


def _window(days) -> tuple[pd.Timestamp, pd.Timestamp]:
    return day_window(days[0])[0], day_window(days[-1])[1]


DEPTH_CHECKS = [
    dg.AssetCheckSpec("book_depth_has_every_level", asset=["silver", "book_depth"], blocking=True,
                      description="Every snapshot has all ten levels -5..-1 and 1..5 %."),
    dg.AssetCheckSpec("book_depth_is_cumulative", asset=["silver", "book_depth"],
                      description="Depth never shrinks moving away from mid on either side (a warning)."),
]
METRICS_CHECKS = [dg.AssetCheckSpec("metrics_one_row_per_5_minutes", asset=["silver", "metrics"], blocking=True,
                                    description="Exactly one row per 5-minute slot of each day (288), sorted.")]


@dg.asset(
    key=["silver", "book_depth"], deps=[dg.AssetKey(["bronze", "book_depth"])], group_name="silver",
    partitions_def=partitions.daily, backfill_policy=dg.BackfillPolicy.single_run(), kinds={"duckdb"},
    check_specs=DEPTH_CHECKS,
    description="Depth snapshots: snapshot_time, percentage (-5..5 without 0), cumulative depth and notional. "
                "Table silver.book_depth.",
)
def book_depth(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
               warehouse: DuckDBResource):
    days, parsed, files = _read_days(context, "book_depth", BOOK_DEPTH, archive, lake, lib_depth.silver_book_depth)
    df = pd.concat([p.depth for p in parsed], ignore_index=True)
    incomplete = [x for p in parsed for x in p.incomplete]
    shrinking = sum(p.not_cumulative for p in parsed)
    checks = [
        dg.AssetCheckResult(
            check_name="book_depth_has_every_level", passed=not incomplete,
            metadata={"incomplete_snapshots": len(incomplete),
                      "first": [f"{t}: missing {levels}" for t, levels in incomplete[:20]]},
            description=None if not incomplete else "snapshots lack depth levels: re-fetch the files; if they "
            "persist, the archive published partial snapshots (report upstream)",
        ),
        dg.AssetCheckResult(check_name="book_depth_is_cumulative", passed=shrinking == 0,
                            severity=dg.AssetCheckSeverity.WARN, metadata={"shrinking_sides": shrinking}),
    ]
    with warehouse.get_connection() as conn:
        written, visible = publish(DEPTH_CHECKS, checks, lambda: replace_window(
            conn, "silver.book_depth", lib_depth.TYPES, df, "snapshot_time", *_window(days)), len(df))
    per_partition(context, df, "snapshot_time", visible["written"])
    yield dg.MaterializeResult(metadata={**table_metadata(df),
        "rows": written, **visible, "snapshots": sum(p.snapshots for p in parsed), "days": len(days),
        "synthetic": synthetic_files(warehouse, files) > 0,
        "duplicates_dropped": sum(p.duplicates_dropped for p in parsed),
        "rows_out_of_order_in_file": sum(p.unsorted_rows for p in parsed),
    })
    yield from checks


@dg.asset(
    key=["silver", "metrics"], deps=[dg.AssetKey(["bronze", "metrics"])], group_name="silver",
    partitions_def=partitions.daily, backfill_policy=dg.BackfillPolicy.single_run(), kinds={"duckdb"},
    check_specs=METRICS_CHECKS,
    description="Open interest (+value), top-trader and global long/short ratios, taker long/short volume ratio "
                "per 5 minutes; sorted and de-duplicated. Table silver.metrics.",
)
def metrics(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
            warehouse: DuckDBResource):
    def parse(raw, day, source):
        return lib_metrics.silver_metrics(raw, day, source, archive.symbol)

    days, parsed, files = _read_days(context, "metrics", METRICS, archive, lake, parse)
    df = pd.concat([p.metrics for p in parsed], ignore_index=True)
    missing = [t for p in parsed for t in p.missing_slots]
    checks = [dg.AssetCheckResult(
        check_name="metrics_one_row_per_5_minutes", passed=not missing,
        metadata={"missing_slots": len(missing), "expected": len(days) * lib_metrics.SLOTS_PER_DAY,
                  "found": len(df), "first_missing": [str(t) for t in missing[:20]]},
        description=None if not missing else "5-minute slots are missing: re-fetch the files; if still missing, "
        "take them from the REST API (openInterestHist and the ratio endpoints)",
    )]
    with warehouse.get_connection() as conn:
        written, visible = publish(METRICS_CHECKS, checks, lambda: replace_window(
            conn, "silver.metrics", lib_metrics.TYPES, df, "create_time", *_window(days)), len(df))
    per_partition(context, df, "create_time", visible["written"])
    yield dg.MaterializeResult(metadata={**table_metadata(df),
        "rows": written, **visible, "days": len(days), "synthetic": synthetic_files(warehouse, files) > 0,
        "duplicates_dropped": sum(p.duplicates_dropped for p in parsed),
        "rows_out_of_order_in_file": sum(p.unsorted_rows for p in parsed),
        "mean_open_interest": float(df["sum_open_interest"].mean()),
        # a series without a row at some time (e.g. a day rebuilt from REST) leaves that value empty, never filled
        "empty_values": dg.MetadataValue.json({c: int(n) for c, n in df[list(lib_metrics.VALUE_COLUMNS)].isna()
                                               .sum().items() if n}),
    })
    yield from checks


def _price_asset(name: str, bronze: str, what: str) -> dg.AssetsDefinition:
    table = f"silver.{name}"
    checks = [dg.AssetCheckSpec(f"{name}_has_every_minute", asset=["silver", name], blocking=True,
                                description="Every minute of each day is present exactly once."),
              dg.AssetCheckSpec(f"{name}_ohlc_consistent", asset=["silver", name], blocking=True,
                                description="high >= open, close, low; low <= open, close.")]
    deps = [dg.AssetKey(["bronze", bronze])]
    if name == "mark_price_1m":
        checks.append(dg.AssetCheckSpec(
            "mark_price_1m_near_last_price", asset=["silver", name],
            description=f"|mark close / last close - 1| <= {lib_prices.MARK_LAST_BOUND:.0%} on every minute that "
                        "silver.klines_1m also has."))
        deps.append(dg.AssetKey(["silver", "klines_1m"]))

    @dg.asset(name=name, key_prefix=["silver"], deps=deps, group_name="silver", partitions_def=partitions.daily,
              backfill_policy=dg.BackfillPolicy.single_run(), kinds={"duckdb"}, check_specs=checks,
              description=f"1m {what} bars (open_time, OHLC) from the archive. Table {table}.")
    def _asset(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
               warehouse: DuckDBResource):
        days, parsed, files = _read_days(context, bronze, KLINES, archive, lake, lib_prices.silver_price_klines)
        df = pd.concat([p.bars for p in parsed], ignore_index=True)
        start, end = _window(days)
        missing = [t for p in parsed for t in p.missing_minutes]
        bad = lib_prices.ohlc_violations(df)
        results = [
            dg.AssetCheckResult(check_name=f"{name}_has_every_minute", passed=not missing,
                                metadata={"missing_minutes": len(missing),
                                          "first_missing": [str(t) for t in missing[:20]]}),
            dg.AssetCheckResult(check_name=f"{name}_ohlc_consistent", passed=bad.empty,
                                metadata={"violations": len(bad),
                                          "sample": dg.MetadataValue.md(bad.head(10).to_markdown(index=False))
                                          if len(bad) else ""}),
        ]
        with warehouse.get_connection() as conn:
            last = (read_window(conn, "silver.klines_1m", "open_time", start, end, ["open_time", "close"])
                    if name == "mark_price_1m" and table_exists(conn, "silver.klines_1m") else None)
            if name == "mark_price_1m":
                compared, far = lib_prices.mark_last_divergence(df, last) if last is not None else (0, pd.DataFrame())
                results.append(dg.AssetCheckResult(
                    check_name="mark_price_1m_near_last_price", passed=far.empty,
                    metadata={"minutes_compared": compared, "beyond_bound": len(far),
                              "max_abs_divergence": float(far["divergence"].abs().max()) if len(far) else 0.0,
                              "sample": dg.MetadataValue.md(far.head(10).to_markdown(index=False))
                              if len(far) else ""}))
            written, visible = publish(checks, results, lambda: replace_window(
                conn, table, lib_prices.TYPES, df, "open_time", start, end), len(df))
        per_partition(context, df, "open_time", visible["written"])
        yield dg.MaterializeResult(metadata={**table_metadata(df),
            "rows": written, **visible, "days": len(days), "synthetic": synthetic_files(warehouse, files) > 0,
            "duplicates_dropped": sum(p.duplicates_dropped for p in parsed),
            "first_bar": str(df["open_time"].min()), "last_bar": str(df["open_time"].max()),
        })
        yield from results

    return _asset


mark_price_1m = _price_asset("mark_price_1m", "mark_price_klines", "mark-price")
index_price_1m = _price_asset("index_price_1m", "index_price_klines", "index-price")
premium_index_1m = _price_asset("premium_index_1m", "premium_index_klines", "premium-index")
