"""Every archive market dataset through the real bronze and silver assets, in process: the bundled sample
(synthetic aggTrades/depth/metrics/prices beside real klines) end to end, and each bad-input case failing
loudly, naming the file, or being counted/reported by a check."""

import hashlib
import io
import re
import shutil
import zipfile

import dagster as dg
import pytest

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.bronze import market as bronze_market
from btc_assets.defs.resources import local_resources
from btc_assets.defs.silver import funding as silver_funding
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.silver import market as silver_market
from btc_assets.defs.silver import order_flow as silver_order_flow
from btc_assets_tests.conftest import SAMPLE, zip_csv

ASSETS = dg.load_assets_from_modules([bronze, bronze_market, silver_klines, silver_funding, silver_market,
                                      silver_order_flow])
SILVER = ["agg_trades", "order_flow_1m", "book_depth", "metrics", "mark_price_1m", "index_price_1m",
          "premium_index_1m"]
ALL = ([["bronze", "klines_1m"], ["silver", "klines_1m"]] + [["bronze", n] for n in bronze_market.DATASETS]
       + [["silver", n] for n in SILVER])
DAILY = "data/futures/um/daily"
AGG = f"{DAILY}/aggTrades/BTCUSDT/BTCUSDT-aggTrades-2024-01-02.zip"
DEPTH = f"{DAILY}/bookDepth/BTCUSDT/BTCUSDT-bookDepth-2024-01-02.zip"


class Run:
    def __init__(self, root, archive):
        self.resources = local_resources(root, archive_url=str(archive))
        self.instance = dg.DagsterInstance.ephemeral()

    def __call__(self, keys, first="2024-01-02", last=None, ok=True):
        return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=self.resources,
                              instance=self.instance, raise_on_error=ok,
                              tags={"dagster/asset_partition_range_start": first,
                                    "dagster/asset_partition_range_end": last or first})

    def sql(self, q):
        with self.resources["warehouse"].get_connection() as conn:
            return conn.execute(q).fetchall()


def checks(res) -> dict:
    return {e.check_name: e for e in res.get_asset_check_evaluations()}


def error_of(res) -> str:
    return str(res.get_step_failure_events()[0].event_specific_data.error)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    run = Run(tmp_path_factory.mktemp("data"), SAMPLE)
    return run, run(ALL, "2024-01-01", "2024-01-02")


def test_every_dataset_materializes_from_the_bundled_sample_and_passes_its_checks(sample):
    run, res = sample
    evaluations = checks(res)
    assert len(evaluations) >= 15 and all(e.passed for e in evaluations.values()), \
        [n for n, e in evaluations.items() if not e.passed]
    assert evaluations["order_flow_1m_matches_klines"].metadata["minutes_compared"].value == 2880
    rows = {t: run.sql(f"SELECT count(*) FROM silver.{t}")[0][0] for t in SILVER}
    assert rows["order_flow_1m"] == rows["mark_price_1m"] == rows["index_price_1m"] == rows["premium_index_1m"] == 2880
    metrics_meta = res.asset_materializations_for_node("silver__metrics")[0].metadata
    assert metrics_meta["rows_out_of_order_in_file"].value > 0  # the files are unsorted, like real ones
    assert rows["book_depth"] == 28_800 and rows["metrics"] == 576 and rows["agg_trades"] > 20_000
    assert run.sql("SELECT source, count(*) FROM bronze.files WHERE dataset <> 'klines' GROUP BY 1") == [
        ("archive:synthetic", 12)]


@pytest.mark.parametrize("table, columns", [
    ("order_flow_1m", {"open_time": "TIMESTAMP", "buy_volume": "DOUBLE", "sell_volume": "DOUBLE", "buy_quote": "DOUBLE",
                       "sell_quote": "DOUBLE", "vwap": "DOUBLE", "trades": "BIGINT", "mean_trade_size": "DOUBLE",
                       "max_trade_size": "DOUBLE", "cvd": "DOUBLE"}),
    ("agg_trades", {"agg_trade_id": "BIGINT", "transact_time": "TIMESTAMP", "is_buyer_maker": "BOOLEAN"}),
    ("book_depth", {"snapshot_time": "TIMESTAMP", "percentage": "INTEGER", "depth": "DOUBLE", "notional": "DOUBLE"}),
    ("metrics", {"create_time": "TIMESTAMP", "sum_open_interest": "DOUBLE",
                 "sum_taker_long_short_vol_ratio": "DOUBLE"}),
    ("premium_index_1m", {"open_time": "TIMESTAMP", "open": "DOUBLE", "close": "DOUBLE"}),
])
def test_tables_have_the_agreed_schemas(sample, table, columns):
    got = dict((r[0], r[1]) for r in sample[0].sql(f"DESCRIBE silver.{table}"))
    assert {c: got.get(c) for c in columns} == columns


def test_rematerializing_a_day_replaces_exactly_that_day_and_links_ids_to_the_previous_day(sample):
    run, _ = sample
    before = run.sql("SELECT count(*), sum(trades) FROM silver.order_flow_1m")
    res = run([["silver", "agg_trades"], ["silver", "order_flow_1m"]])
    assert run.sql("SELECT count(*), sum(trades) FROM silver.order_flow_1m") == before
    assert checks(res)["agg_trades_ids_contiguous"].passed


@pytest.fixture()
def mirror(tmp_path):
    """A writable copy of 2024-01-02 of every daily dataset (klines real, the rest synthetic)."""
    for f in (SAMPLE / DAILY).rglob("*2024-01-02.zip*"):
        dest = tmp_path / "mirror" / f.relative_to(SAMPLE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    return tmp_path / "mirror"


def csv_lines(relpath: str) -> list[str]:
    with zipfile.ZipFile(io.BytesIO((SAMPLE / relpath).read_bytes())) as zf:
        return zf.read(zf.namelist()[0]).decode().splitlines()


def publish(mirror, relpath: str, lines: list[str]) -> None:
    name = relpath.rsplit("/", 1)[1]
    data = zip_csv(name.replace(".zip", ".csv"), "\n".join(lines) + "\n")
    (mirror / relpath).write_bytes(data)
    (mirror / f"{relpath}.CHECKSUM").write_text(f"{hashlib.sha256(data).hexdigest()}  {name}\n")


def test_agg_trade_id_gap_fails_the_blocking_check_and_stops_order_flow(tmp_path, mirror):
    lines = csv_lines(AGG)
    publish(mirror, AGG, lines[:500] + lines[502:])  # two aggTrades lost
    res = Run(tmp_path / "data", mirror)([["bronze", "agg_trades"], ["silver", "agg_trades"],
                                          ["silver", "order_flow_1m"]], ok=False)
    check = checks(res)["agg_trades_ids_contiguous"]
    assert not check.passed and check.metadata["gaps"].value == 2
    assert "2 missing" in check.metadata["first_gaps"].value[0]
    assert not [e for e in res.get_asset_materialization_events() if e.asset_key.path[-1] == "order_flow_1m"]


def test_exact_duplicates_and_unsorted_rows_are_counted_not_dropped_silently(tmp_path, mirror):
    lines = csv_lines(AGG)
    publish(mirror, AGG, lines[:10] + [lines[11], lines[10], lines[11]] + lines[12:])
    res = Run(tmp_path / "data", mirror)([["bronze", "agg_trades"], ["silver", "agg_trades"]])
    meta = res.asset_materializations_for_node("silver__agg_trades")[0].metadata
    assert meta["duplicates_dropped"].value == 1 and meta["rows_out_of_order_in_file"].value == 1
    assert checks(res)["agg_trades_ids_contiguous"].passed


@pytest.mark.parametrize("mutate, expected", [
    (lambda ls: ls + [",".join(ls[20].split(",")[:2] + ["9.999"] + ls[20].split(",")[3:])], r"share an agg_trade_id"),
    (lambda ls: ls[:-1] + [ls[-1][:25]], r"line \d+"),
    (lambda ls: ls[:5] + [ls[5].replace(".", "x", 1)] + ls[6:], r"line 6"),
    (lambda ls: ls[:5] + [ls[5] + ",true"] + ls[6:], r"line 6 has 8 fields"),
    (lambda ls: ["id,price,qty,quote_qty,time,is_buyer_maker"] + ls[1:], r"header that does not match"),
], ids=["conflicting-duplicate", "truncated", "non-numeric", "wrong-column-count", "wrong-header"])
def test_bad_agg_trades_fail_silver_naming_the_file(tmp_path, mirror, mutate, expected):
    publish(mirror, AGG, mutate(csv_lines(AGG)))
    run = Run(tmp_path / "data", mirror)
    run([["bronze", "agg_trades"]])
    res = run([["silver", "agg_trades"]], ok=False)
    assert not res.success
    err = error_of(res)
    assert "BTCUSDT-aggTrades-2024-01-02" in err and re.search(expected, err), err


def test_order_flow_that_disagrees_with_the_klines_fails_its_check(tmp_path, mirror):
    lines = csv_lines(AGG)
    f = lines[100].split(",")
    f[2] = f"{float(f[2]) + 1:.3f}"  # one aggTrade 1 BTC larger: ids intact, volume off
    publish(mirror, AGG, lines[:100] + [",".join(f)] + lines[101:])
    res = Run(tmp_path / "data", mirror)([["bronze", "klines_1m"], ["silver", "klines_1m"], ["bronze", "agg_trades"],
                                          ["silver", "agg_trades"], ["silver", "order_flow_1m"]], ok=False)
    check = checks(res)["order_flow_1m_matches_klines"]
    assert not check.passed and check.metadata["mismatches"].value == 1
    assert check.metadata["minutes_compared"].value == 1440


def test_missing_depth_level_fails_the_blocking_check(tmp_path, mirror):
    lines = csv_lines(DEPTH)
    publish(mirror, DEPTH, lines[:33] + lines[34:])
    res = Run(tmp_path / "data", mirror)([["bronze", "book_depth"], ["silver", "book_depth"]], ok=False)
    check = checks(res)["book_depth_has_every_level"]
    assert not check.passed and check.metadata["incomplete_snapshots"].value == 1


def test_checksum_mismatch_and_unpublished_day_name_the_file(tmp_path, mirror):
    f = mirror / DEPTH
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    (mirror / f"{DAILY}/metrics/BTCUSDT/BTCUSDT-metrics-2024-01-02.zip").unlink()
    run = Run(tmp_path / "data", mirror)
    err = error_of(run([["bronze", "book_depth"]], ok=False))
    assert "BTCUSDT-bookDepth-2024-01-02.zip" in err and "checksum" in err.lower()
    err = error_of(run([["bronze", "metrics"]], ok=False))
    assert "BTCUSDT-metrics-2024-01-02.zip" in err and "publish" in err


def test_funding_row_off_its_grid_fails_silver_naming_the_file(tmp_path):
    rel = "data/futures/um/monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip"
    lines = csv_lines(rel)
    off = lines[3].split(",")
    off[0] = str(int(off[0]) + 3_600_000)  # one hour late: on the hour, but not on the 8h grid
    mirror = tmp_path / "mirror"
    (mirror / rel).parent.mkdir(parents=True)
    publish(mirror, rel, lines[:3] + [",".join(off)] + lines[4:])
    run = Run(tmp_path / "data", mirror)
    res = dg.materialize(ASSETS, selection=[dg.AssetKey(["bronze", "funding_rates"]),
                                            dg.AssetKey(["silver", "funding_rates"])],
                         partition_key="2024-01-01", resources=run.resources, instance=run.instance,
                         raise_on_error=False)
    err = error_of(res)
    assert "BTCUSDT-fundingRate-2024-01.zip" in err and "off the 8h settlement grid" in err
