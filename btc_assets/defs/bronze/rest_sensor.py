"""Replace REST-sourced bronze partitions with the archive's file once the archive publishes it.

The sensor reads bronze.files for rows with source = 'rest', asks the archive whether each file exists now (a
HEAD / stat, no download) and requests a run of that bronze asset's partition plus the silver tables built from it
(SILVER), so silver is rebuilt from the archive's bytes. One run_key per file and REST fetch time: a file is
re-requested only if it was fetched from REST again. The cursor (JSON) remembers when each relpath was last
checked, so a tick checks at most `MAX_CHECKS` files, oldest check first.
"""


import json
import time
from dataclasses import dataclass

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from btc_assets.defs.automation import SENSOR_STATUS
from btc_assets.defs.bronze.assets import MANIFEST_TABLE, REST_SOURCE
from btc_assets.defs.bronze.market import DATASETS
from btc_assets.defs.resources.sources import ArchiveResource
from btc_assets.lib.data.archive.client import ArchiveClient
from btc_assets.lib.data.archive.files import daily_file, monthly_file
from btc_assets.lib.storage.warehouse import table_exists

MAX_CHECKS = 50
# archive dataset -> the silver tables rebuilt with its file: every silver table downstream of the bronze asset
# except those in NOT_REBUILT (a test holds this to the asset graph, so a new silver table must be placed here)
SILVER: dict[str, list[str]] = {
    "klines": ["klines_1m", "klines_5m", "klines_15m", "klines_1h", "klines_4h", "klines_1d"],
    "fundingRate": ["funding_rates"],
    "aggTrades": ["agg_trades", "order_flow_1m"],
    "bookDepth": ["book_depth"],
    "metrics": ["metrics"],
    "markPriceKlines": ["mark_price_1m"],
    "indexPriceKlines": ["index_price_1m"],
    "premiumIndexKlines": ["premium_index_1m"],
}
# silver tables downstream of a dataset that its swap leaves alone: mark_price_1m reads klines only for a
# cross-check, order_flow_1m is aggTrades' table (rebuilt with it) and reads klines only to check itself
NOT_REBUILT: dict[str, list[str]] = {"klines": ["mark_price_1m", "order_flow_1m"]}
# archive dataset -> (bronze asset, its silver assets, interval)
_BRONZE = {"klines": ("klines_1m", "1m"), "fundingRate": ("funding_rates", None),
           **{ds: (name, interval) for name, (ds, interval, _) in DATASETS.items()}}  # dataset -> (bronze, interval)
ASSETS: dict[str, tuple[list[str], list[list[str]], str | None]] = {
    ds: (["bronze", bronze], [["silver", n] for n in SILVER[ds]], interval)
    for ds, (bronze, interval) in _BRONZE.items()
}


@dataclass(frozen=True)
class Republish:
    relpath: str
    asset: list[str]
    silver: list[list[str]]
    partition_key: str
    run_key: str


def rest_rows(warehouse: DuckDBResource) -> pd.DataFrame:
    with warehouse.get_connection() as conn:
        if not table_exists(conn, MANIFEST_TABLE):
            return pd.DataFrame(columns=["dataset", "period_start", "relpath", "fetched_at"])
        return conn.execute(f"SELECT dataset, period_start, relpath, fetched_at FROM {MANIFEST_TABLE} "
                            "WHERE source = ? ORDER BY period_start", [REST_SOURCE]).df()


def published(rows: pd.DataFrame, client: ArchiveClient, symbol: str, checked: dict[str, float],
              max_checks: int = MAX_CHECKS) -> tuple[list[Republish], dict[str, float]]:
    """The REST rows whose archive file now exists (checking at most max_checks, least recently checked first)."""
    rows = rows[rows["dataset"].isin(ASSETS.keys())].copy()
    rows["last_check"] = rows["relpath"].map(lambda r: checked.get(r, 0.0))
    out, now = [], time.time()
    for r in rows.sort_values("last_check").head(max_checks).itertuples():
        asset, silver, interval = ASSETS[r.dataset]
        day = pd.Timestamp(r.period_start).date()
        f = (monthly_file(r.dataset, symbol, day) if r.dataset == "fundingRate"
             else daily_file(r.dataset, symbol, day, interval=interval))
        checked[r.relpath] = now
        if client.exists(f):
            out.append(Republish(r.relpath, asset, silver, day.isoformat(),
                                 f"rest->archive:{r.relpath}:{pd.Timestamp(r.fetched_at).isoformat()}"))
    return out, checked


@dg.sensor(minimum_interval_seconds=3600, default_status=SENSOR_STATUS,
           description="Re-materializes bronze partitions taken from the REST API once the archive publishes them.")
def rest_partitions_now_in_archive(context: dg.SensorEvaluationContext, warehouse: DuckDBResource,
                                   archive: ArchiveResource) -> dg.SensorResult:
    checked = json.loads(context.cursor) if context.cursor else {}
    rows = rest_rows(warehouse)
    checked = {k: v for k, v in checked.items() if k in set(rows["relpath"])}  # forget replaced files
    found, checked = published(rows, archive.client(), archive.symbol, checked)
    requests = [dg.RunRequest(run_key=p.run_key, partition_key=p.partition_key,
                              asset_selection=[dg.AssetKey(k) for k in [p.asset, *p.silver]],
                              tags={"btc/reason": "archive published a REST-sourced partition"}) for p in found]
    skip = None if requests else f"{len(rows)} REST-sourced files, none published by the archive yet"
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(checked), skip_reason=skip)
