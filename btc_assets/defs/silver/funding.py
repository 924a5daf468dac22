"""Silver funding rates: one row per settlement, on the grid its interval states."""


import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.defs.table_metadata import table_metadata
from btc_assets.lib.data.archive.files import monthly_file
from btc_assets.lib.data.archive.layouts import FUNDING_RATE
from btc_assets.lib.data.archive.csv_reader import read_archive_csv
from btc_assets.lib.data.funding import silver_funding
from btc_assets.lib.storage.warehouse import replace_window

FUNDING_TYPES = {"funding_time": "TIMESTAMP", "calc_time": "TIMESTAMP", "interval_hours": "BIGINT", "rate": "DOUBLE"}


@dg.asset(
    key=["silver", "funding_rates"],
    deps=[dg.AssetKey(["bronze", "funding_rates"])],
    group_name="silver",
    partitions_def=partitions.monthly,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"duckdb"},
    description="Funding settlements (funding_time on the interval grid, published calc_time, rate). "
    "Table silver.funding_rates.",
)
def funding_rates(
    context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource, warehouse: DuckDBResource
) -> dg.MaterializeResult:
    start, end = (pd.Timestamp(t) for t in context.partition_time_window)
    frames = []
    for month in pd.date_range(start, end, freq="MS", inclusive="left"):
        f = monthly_file("fundingRate", archive.symbol, month.date())
        raw = read_archive_csv(lake.read_bytes(f"bronze/{f.relpath}"), f.filename, FUNDING_RATE)
        frames.append(silver_funding(raw, source=f"{f.filename} (partition {month:%Y-%m})"))
    df = pd.concat(frames, ignore_index=True)
    with warehouse.get_connection() as conn:
        written = replace_window(conn, "silver.funding_rates", FUNDING_TYPES, df, "funding_time", start, end)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(df),
            "rows": written,
            "first": str(df["funding_time"].min()),
            "last": str(df["funding_time"].max()),
            "mean_rate": float(df["rate"].mean()),
            "interval_hours": sorted(int(h) for h in df["interval_hours"].unique()),
        }
    )
