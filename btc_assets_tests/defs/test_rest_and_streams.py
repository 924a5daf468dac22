"""Dagster wiring of the REST fallback and the collector: a day the archive has not published comes from REST
(source 'rest'), silver reads it like an archive day, the sensor re-materializes it once the archive publishes;
the collector's recordings become bronze/stream_recordings, silver.liquidations and silver.order_book_live."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import time
from pathlib import Path

import dagster as dg
import pytest

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.bronze import market as bronze_market
from btc_assets.defs.bronze import streams as bronze_streams
from btc_assets.defs.bronze.rest_sensor import ASSETS as ASSETS_OF
from btc_assets.defs.bronze.rest_sensor import NOT_REBUILT, published, rest_partitions_now_in_archive, rest_rows
from btc_assets.defs.resources import local_resources
from btc_assets.defs.resources.sources import ArchiveWithRestResource, StreamRecordingsResource
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.silver import live as silver_live
from btc_assets.defs.silver import market as silver_market
from btc_assets.lib.data.archive.files import daily_file, monthly_file
from btc_assets_tests.fakes.binance import run_in_thread
from btc_assets_tests.fakes.binance.market_stats import sample_metrics, serve_metrics
from btc_assets_tests.fakes.binance.market_streams import publish_raw, publish_round
from btc_assets_tests.fakes.binance.replay import synthetic_bars
from btc_assets.lib.storage.warehouse import ensure_table
from btc_assets_tests.conftest import SAMPLE
from btc_assets_tests.lib.data.collector.conftest import run_collector, until_recording

DAY = "2024-03-01"
T0 = 1_709_251_200_000  # 2024-03-01 00:00 UTC
ASSETS = dg.load_assets_from_modules([bronze, bronze_market, silver_klines, silver_market, bronze_streams,
                                      silver_live])


def _resources(tmp_path: Path, mirror: Path, rest_url: str) -> dict:
    res = local_resources(tmp_path / "data", archive_url=str(mirror))
    res["archive"] = ArchiveWithRestResource(base_url=str(mirror), rest_url=rest_url, rest_timeout_ms=2000,
                                             rest_backoff_s=0.01)
    res["streams"] = StreamRecordingsResource(root=str(tmp_path / "streams"))
    return res


def _sql(res, q, params=None):
    with res["warehouse"].get_connection() as conn:
        return conn.execute(q, params or []).fetchall()


def test_unpublished_day_comes_from_rest_then_from_the_archive(tmp_path):
    mirror = tmp_path / "archive"
    mirror.mkdir()
    with run_in_thread(synthetic_bars(1440, drift=0.1, t0_ms=T0), "k", "s") as fx:
        fx.exchange.cursor = 1439
        res = _resources(tmp_path, mirror, fx.rest_url)
        keys = [dg.AssetKey(["bronze", "klines_1m"]), dg.AssetKey(["silver", "klines_1m"])]
        result = dg.materialize(ASSETS, selection=keys, partition_key=DAY, resources=res)
        assert result.success
    meta = result.asset_materializations_for_node("bronze__klines_1m")[0].metadata
    assert meta["source"].value == "rest" and meta["rest_files"].value == 1
    assert _sql(res, "SELECT source FROM bronze.files") == [("rest",)]
    assert _sql(res, "SELECT count(*) FROM silver.klines_1m")[0][0] == 1440

    f = daily_file("klines", "BTCUSDT", dt.date(2024, 3, 1), interval="1m")
    found, _ = published(rest_rows(res["warehouse"]), res["archive"].client(), "BTCUSDT", {})
    assert found == []  # not in the archive yet
    # the archive publishes the day (here: the same bytes, as a mirror would hold them)
    lake = Path(res["lake"].root) / "bronze"
    (mirror / f.relpath).parent.mkdir(parents=True)
    shutil.copy(lake / f.relpath, mirror / f.relpath)
    shutil.copy(lake / f.checksum_relpath, mirror / f.checksum_relpath)
    ctx = dg.build_sensor_context(resources={"warehouse": res["warehouse"], "archive": res["archive"]})
    out = rest_partitions_now_in_archive(ctx)
    assert [r.partition_key for r in out.run_requests] == [DAY]
    rebuilt = keys + [dg.AssetKey(["silver", f"klines_{i}"]) for i in ("5m", "15m", "1h", "4h", "1d")]
    assert set(out.run_requests[0].asset_selection) == set(rebuilt)
    assert dg.materialize(ASSETS, selection=out.run_requests[0].asset_selection, partition_key=DAY,
                          resources=res).success
    assert _sql(res, "SELECT source FROM bronze.files") == [("archive",)]


def test_rest_failure_names_the_day_and_both_causes(tmp_path):
    mirror = tmp_path / "archive"
    mirror.mkdir()
    with run_in_thread(synthetic_bars(1440, t0_ms=T0), "k", "s") as fx:
        fx.exchange.cursor = 1439
        fx.faults.banned(retry_after=60, path="/fapi/v1/klines")
        res = _resources(tmp_path, mirror, fx.rest_url)
        with pytest.raises(dg.Failure, match=r"2024-03-01: .*not in the local mirror.*REST fallback failed.*418"):
            dg.materialize(ASSETS, selection=[dg.AssetKey(["bronze", "klines_1m"])], partition_key=DAY,
                           resources=res)


def test_unpublished_metrics_day_comes_from_rest_with_empty_values_kept_empty(tmp_path):
    day, t0 = dt.date(2024, 1, 2), 1_704_153_600_000
    served = sample_metrics(SAMPLE, [day]).sort_values("create_time").reset_index(drop=True)
    served.loc[10, "count_long_short_ratio"] = float("nan")  # globalLongShortAccountRatio has no row at 00:50
    mirror = tmp_path / "archive"
    mirror.mkdir()
    with run_in_thread(synthetic_bars(1500, t0_ms=t0), "k", "s") as fx:
        fx.exchange.cursor = 1499
        fx.exchange.clock_skew_ms = t0 + 30 * 3_600_000 - int(time.time() * 1000)
        serve_metrics(fx.exchange, served)
        res = _resources(tmp_path, mirror, fx.rest_url)
        keys = [dg.AssetKey(["bronze", "metrics"]), dg.AssetKey(["silver", "metrics"])]
        result = dg.materialize(ASSETS, selection=keys, partition_key=day.isoformat(), resources=res)
    assert result.success
    assert result.asset_materializations_for_node("bronze__metrics")[0].metadata["source"].value == "rest"
    assert _sql(res, "SELECT dataset, source FROM bronze.files") == [("metrics", "rest")]
    silver = result.asset_materializations_for_node("silver__metrics")[0].metadata
    assert silver["empty_values"].value == {"count_long_short_ratio": 1}
    assert [c.passed for c in result.get_asset_check_evaluations()] == [True]  # all 288 slots present
    rows = _sql(res, "SELECT count(*), count(count_long_short_ratio), count(sum_open_interest) FROM silver.metrics "
                     "WHERE NOT isnan(coalesce(count_long_short_ratio, 'nan'::DOUBLE))")
    assert rows == [(287, 287, 287)]

    # the archive publishes the day: the sensor swaps the file and rebuilds silver/metrics from it
    f = daily_file("metrics", "BTCUSDT", day)
    for rel in (f.relpath, f.checksum_relpath):
        (mirror / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / rel, mirror / rel)
    ctx = dg.build_sensor_context(resources={"warehouse": res["warehouse"], "archive": res["archive"]})
    [request] = rest_partitions_now_in_archive(ctx).run_requests
    assert set(request.asset_selection) == set(keys) and request.partition_key == day.isoformat()
    again = dg.materialize(ASSETS, selection=request.asset_selection, partition_key=day.isoformat(), resources=res)
    assert again.success
    assert _sql(res, "SELECT source FROM bronze.files") == [("archive:synthetic",)]  # the sample's file
    assert again.asset_materializations_for_node("silver__metrics")[0].metadata["empty_values"].value == {}
    assert _sql(res, "SELECT count(count_long_short_ratio) FROM silver.metrics") == [(288,)]


@pytest.mark.parametrize("dataset", sorted(ASSETS_OF))
def test_sensor_rebuilds_the_silver_tables_of_every_swapped_dataset(tmp_path, dataset):
    bronze_key, silver_keys, interval = ASSETS_OF[dataset]
    day = dt.date(2024, 3, 1)
    f = (monthly_file(dataset, "BTCUSDT", day) if dataset == "fundingRate"
         else daily_file(dataset, "BTCUSDT", day, interval=interval))
    mirror = tmp_path / "archive"
    (mirror / f.relpath).parent.mkdir(parents=True)
    (mirror / f.relpath).write_bytes(b"published")
    res = _resources(tmp_path, mirror, "")
    with res["warehouse"].get_connection() as conn:
        ensure_table(conn, bronze.MANIFEST_TABLE, bronze.MANIFEST_COLUMNS)
        conn.execute(f"INSERT INTO {bronze.MANIFEST_TABLE} VALUES (?, ?, ?, 'x', 1, 'rest', 'rest', now())",
                     [dataset, dt.datetime(2024, 3, 1), f.relpath])
    ctx = dg.build_sensor_context(resources={"warehouse": res["warehouse"], "archive": res["archive"]})
    [request] = rest_partitions_now_in_archive(ctx).run_requests
    assert request.asset_selection[0] == dg.AssetKey(bronze_key)
    assert {k.path[0] for k in request.asset_selection[1:]} == {"silver"} and len(request.asset_selection) > 1
    assert set(request.asset_selection[1:]) == {dg.AssetKey(k) for k in silver_keys}


def test_every_silver_table_downstream_of_a_dataset_is_rebuilt_or_deliberately_left():
    from btc_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for dataset, (bronze_key, silver_keys, _) in ASSETS_OF.items():
        below = {k for k in dg.AssetSelection.assets(bronze_key).downstream().resolve(graph) if k.path[0] == "silver"}
        decided = {dg.AssetKey(k) for k in silver_keys} | {dg.AssetKey(["silver", n])
                                                         for n in NOT_REBUILT.get(dataset, [])}
        assert below == decided, dataset
        assert not {dg.AssetKey(k) for k in silver_keys} - below, dataset


def test_rest_cannot_rebuild_book_depth_and_says_so(tmp_path):
    mirror = tmp_path / "archive"
    mirror.mkdir()
    with run_in_thread(synthetic_bars(1440, t0_ms=T0), "k", "s") as fx:
        fx.exchange.cursor = 1439
        res = _resources(tmp_path, mirror, fx.rest_url)
        with pytest.raises(dg.Failure, match=r"2024-03-01: .*not in the local mirror.*cannot rebuild bookDepth"):
            dg.materialize(ASSETS, selection=[dg.AssetKey(["bronze", "book_depth"])], partition_key=DAY,
                           resources=res)
        assert not fx.faults.requests  # nothing was asked of the REST API


def test_recordings_become_bronze_and_silver_live_tables(tmp_path):
    # the day must have ended to be a partition: the collector's and the fake's clocks are moved to 2024-03-01 12:00
    skew_s = (T0 + 12 * 3_600_000) / 1000 - time.time()
    with run_in_thread(synthetic_bars(50), "k", "s") as fx:
        fx.exchange.clock_skew_ms = int(skew_s * 1000)

        async def body(col):
            n = await until_recording(fx, col)
            for i in range(n, n + 30):
                publish_round(fx.exchange, i)
            publish_raw(fx.exchange, "btcusdt@forceOrder", '{"stream":"btcusdt@forceOrder","data":{"e":"x"}}')
            for _ in range(100):
                if col.stats.by_kind.get("forceOrder", 0) >= n + 30 and col.stats.dead_letters:
                    break
                await asyncio.sleep(0.02)

        col = run_collector(fx, tmp_path, body, clock=lambda: time.time() + skew_s)
    res = _resources(tmp_path, tmp_path, "")
    today = DAY
    keys = [["bronze", "stream_recordings"], ["silver", "liquidations"], ["silver", "order_book_live"]]
    result = dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], partition_key=today, resources=res)
    assert result.success
    meta = result.asset_materializations_for_node("bronze__stream_recordings")[0].metadata
    assert meta["dead_letters"].value == col.stats.dead_letters == 1
    assert meta["records"].value["forceOrder"] == col.stats.by_kind["forceOrder"]
    liq = _sql(res, "SELECT count(*), min(price) > 0, count(DISTINCT side) FROM silver.liquidations")[0]
    assert liq == (col.stats.by_kind["forceOrder"], True, 2)
    book = _sql(res, "SELECT count(*), min(best_ask - best_bid) > 0, max(levels) FROM silver.order_book_live")[0]
    assert book == (col.stats.by_kind["depth20"], True, 20)
    assert {c[0] for c in _sql(res, "DESCRIBE silver.liquidations")} >= {"time", "side", "price", "quantity"}


def test_no_recordings_fails_with_what_to_do(tmp_path):
    res = _resources(tmp_path, tmp_path, "")
    with pytest.raises(dg.Failure, match="make collect"):
        dg.materialize(ASSETS, selection=[dg.AssetKey(["bronze", "stream_recordings"])], partition_key="2024-01-01",
                       resources=res)
