"""Silver tables only the live collector can provide: liquidations (forceOrder) and the live top of book
(depth20@100ms). The archive has neither, so these exist only for days the collector ran.

silver.liquidations: time, side, price, quantity (+ average_price, status, received_at) — the columns the
feature store's `liquidations` source reads. Binance sends at most the latest liquidation per symbol per second,
so this is a sample of liquidations, not all of them (the metadata says so).
silver.order_book_live: one top-of-book row per 100 ms update: best bid/ask and sizes, mid, spread, summed depth.
"""


import datetime as dt
import gzip
import io
import json

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources import LakeResource
from btc_assets.lib.collector import tables
from btc_assets.lib.warehouse import replace_window


def _hour_files(lake: LakeResource, kind: str, day: dt.date) -> list[str]:
    """Lake relpaths of the day's hour files plus the hour either side (events are keyed on event time)."""
    prev, nxt = day - dt.timedelta(days=1), day + dt.timedelta(days=1)
    names = [(prev, "23")] + [(day, f"{h:02d}") for h in range(24)] + [(nxt, "00")]
    return [f"bronze/streams/{kind}/{d}/{kind}-{d}-{h}.jsonl.gz" for d, h in names]


def _records(lake: LakeResource, kinds: tuple[str, ...], day: dt.date) -> tuple[list, int]:
    out, files = [], 0
    for kind in kinds:
        for rel in _hour_files(lake, kind, day):
            try:
                content = lake.read_bytes(rel)
            except FileNotFoundError:
                continue
            files += 1
            text = gzip.GzipFile(fileobj=io.BytesIO(content)).read().decode()
            out += [(rel, i + 1, json.loads(ln)) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    return out, files


def _write(context, warehouse: DuckDBResource, table: str, types: dict, typed: tables.Typed, files: int,
           note: str) -> dg.MaterializeResult:
    day = pd.Timestamp(context.partition_key, tz="UTC")
    df = tables.in_window(typed.frame, day, day + pd.Timedelta(days=1))
    with warehouse.get_connection() as conn:
        written = replace_window(conn, table, types, df, "time", day, day + pd.Timedelta(days=1))
    if typed.rejected:
        context.log.warning(f"{table} {context.partition_key}: {len(typed.rejected)} records could not be typed, "
                            f"first: {typed.rejected[0]}")
    return dg.MaterializeResult(metadata={
        "rows": written, "files_read": files, "rejected": len(typed.rejected),
        "rejected_sample": dg.MetadataValue.md("\n".join(f"- {r}" for r in typed.rejected[:20]) or "none"),
        "first": str(df["time"].min()) if len(df) else "none", "last": str(df["time"].max()) if len(df) else "none",
        "preview": dg.MetadataValue.md(df.head(10).to_markdown(index=False) if len(df) else "no rows"),
        "note": note,
    })


@dg.asset(key=["silver", "liquidations"], deps=[dg.AssetKey(["bronze", "stream_recordings"])], group_name="silver",
          partitions_def=partitions.daily, pool="duckdb", kinds={"duckdb"},
          description="Liquidations from the forceOrder stream (live only): time, side, price, quantity. "
                      "Table silver.liquidations.")
def liquidations(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: DuckDBResource):
    records, files = _records(lake, ("forceOrder",), dt.date.fromisoformat(context.partition_key))
    return _write(context, warehouse, "silver.liquidations", tables.LIQUIDATION_TYPES, tables.liquidations(records),
                  files, "forceOrder sends at most one liquidation per symbol per second: a sample, undercounted")


@dg.asset(key=["silver", "order_book_live"], deps=[dg.AssetKey(["bronze", "stream_recordings"])],
          group_name="silver", partitions_def=partitions.daily, pool="duckdb", kinds={"duckdb"},
          description="Live top of book from depth20@100ms (live only): best bid/ask, sizes, mid, spread, summed "
                      "depth. Table silver.order_book_live.")
def order_book_live(context: dg.AssetExecutionContext, lake: LakeResource, warehouse: DuckDBResource):
    records, files = _records(lake, ("depth20", "depth10"), dt.date.fromisoformat(context.partition_key))
    return _write(context, warehouse, "silver.order_book_live", tables.ORDER_BOOK_TYPES, tables.order_book(records),
                  files, "partial book depth, 100 ms updates, as recorded by the collector")
