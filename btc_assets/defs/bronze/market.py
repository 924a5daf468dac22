"""Bronze market datasets besides klines: daily archive files of aggTrades, bookDepth, metrics and mark/index/
premium 1m klines, fetched, checksum-verified and kept byte for byte, with a manifest row each in bronze.files.

The bundled sample's generated files carry a SYNTHETIC zip comment (see btc_assets/lib/data/synthetic): their manifest
rows say `source = 'archive:synthetic'` and the materialization's metadata says `synthetic: true`.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.bronze.assets import fetch_to_lake
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.defs.resources.storage import LakeResource
from btc_assets.lib.data.market.datasets import DATASETS, archive_file

def _bronze_asset(name: str) -> dg.AssetsDefinition:
    dataset, interval, what = DATASETS[name]

    @dg.asset(
        name=name,
        key_prefix=["bronze"],
        group_name="bronze",
        partitions_def=partitions.daily,
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={"binance", "file"},
        description=f"Daily USD-M {dataset} archive files ({what}), zip + .CHECKSUM verified and kept as received.",
    )
    def _asset(context: dg.AssetExecutionContext, archive: ArchiveResource, lake: LakeResource,
               warehouse: DuckDBResource) -> dg.MaterializeResult:
        files = [(d, archive_file(name, archive.symbol, d)) for d in partitions.days_of(context)]
        return fetch_to_lake(context, files, archive, lake, warehouse)

    return _asset


agg_trades, book_depth, metrics, mark_price_klines, index_price_klines, premium_index_klines = (
    _bronze_asset(n) for n in DATASETS)
