"""silver/klines_4h and klines_1d built from 1m, and the long history read from the archive's monthly 1h/1d files:
checked, compared with the 1m-built bars wherever both exist, and read as one series."""

import dagster as dg
import pandas as pd
import pytest

from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.resources import local_resources
from btc_assets.defs.silver import history
from btc_assets.defs.silver import klines as silver_klines

ASSETS = dg.load_assets_from_modules([bronze, silver_klines, history])
ONE_MINUTE = [["bronze", "klines_1m"], ["silver", "klines_1m"], ["silver", "klines_1h"], ["silver", "klines_4h"],
              ["silver", "klines_1d"]]
HISTORY = [["bronze", "klines_history"], ["silver", "klines_1h_history"], ["silver", "klines_1d_history"]]
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, sample_archive):
    resources = local_resources(tmp_path_factory.mktemp("history"), archive_url=str(sample_archive))
    with dg.instance_for_test() as instance:
        def run(keys, first, last, raise_on_error=True):
            return dg.materialize(ASSETS, selection=[dg.AssetKey(k) for k in keys], resources=resources,
                                  instance=instance, tags=dict(zip(RANGE, (first, last))),
                                  raise_on_error=raise_on_error)

        def sql(q):
            with resources["warehouse"].get_connection() as conn:
                return conn.execute(q).fetchall()

        run(ONE_MINUTE, "2024-01-01", "2024-01-02")
        yield run, sql, resources


def checks(res) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in res.get_asset_check_evaluations()}


def test_4h_and_1d_bars_are_built_from_every_minute(pipe):
    _, sql, _ = pipe
    assert sql("SELECT count(*), min(minutes), max(minutes) FROM silver.klines_4h") == [(12, 240, 240)]
    assert sql("SELECT count(*), min(minutes) FROM silver.klines_1d") == [(2, 1440)]
    # the day's bar is the day's minutes: first open, max high, last close, summed volume
    day, = sql("SELECT open, high, close, volume FROM silver.klines_1d WHERE open_time = '2024-01-01'")
    one = sql("SELECT first(open ORDER BY open_time), max(high), last(close ORDER BY open_time), sum(volume) "
              "FROM silver.klines_1m WHERE open_time < '2024-01-02'")[0]
    assert day == pytest.approx(one)


def test_the_monthly_history_is_checked_and_agrees_with_the_1m_built_bars(pipe):
    run, sql, resources = pipe
    res = run(HISTORY, "2023-12-01", "2024-01-01")
    c = checks(res)
    assert all(e.passed for e in c.values()), c
    assert c["klines_1h_history_agrees_with_1m"].metadata["bars_compared"].value == 48
    assert c["klines_1d_history_agrees_with_1m"].metadata["bars_compared"].value == 2
    assert sql("SELECT count(*) FROM silver.klines_1h_history") == [(744 + 744,)]
    assert sql("SELECT count(*) FROM silver.klines_1d_history") == [(62,)]
    with resources["warehouse"].get_connection() as conn:
        one = history.read_history(conn, "1d", pd.Timestamp("2023-12-30", tz="UTC"),
                                   pd.Timestamp("2024-01-05", tz="UTC"))
    assert one["source"].tolist() == ["archive", "archive", "1m", "1m", "archive", "archive"]
    assert one["open_time"].is_monotonic_increasing and one["open_time"].is_unique


def test_a_disagreement_with_the_1m_bars_blocks_the_month_and_names_the_bar(pipe):
    run, sql, _ = pipe
    run(HISTORY, "2024-01-01", "2024-01-01")
    before = sql("SELECT count(*) FROM silver.klines_1d_history WHERE open_time >= '2024-01-01'")
    sql("UPDATE silver.klines_1d SET high = high + 1 WHERE open_time = '2024-01-02'")
    try:
        res = run(HISTORY, "2024-01-01", "2024-01-01", raise_on_error=False)
    finally:
        sql("UPDATE silver.klines_1d SET high = high - 1 WHERE open_time = '2024-01-02'")
    c = checks(res)
    bad = c["klines_1d_history_agrees_with_1m"]
    assert not bad.passed and "2024-01-02 00:00:00+00:00 (high" in bad.description
    assert bad.metadata["disagreements"].value == 1
    assert not res.success  # the blocking check stops the run
    # the month was not written: readers keep the previous version
    assert sql("SELECT count(*) FROM silver.klines_1d_history WHERE open_time >= '2024-01-01'") == before
    mats = [m for m in res.get_asset_materialization_events()
            if m.asset_key == dg.AssetKey(["silver", "klines_1d_history"])]
    assert mats and mats[0].materialization.metadata["written"].value is False


def test_with_no_1m_bars_in_the_month_the_check_says_it_compared_nothing(pipe):
    run, _, _ = pipe
    c = checks(run(HISTORY, "2020-03-01", "2020-03-01"))
    agree = c["klines_1h_history_agrees_with_1m"]
    assert agree.passed and agree.metadata["bars_compared"].value == 0
    assert "nothing compared" in agree.description
