"""bronze -> silver -> gold materialized in process on real sample days; re-runs replace exactly their day."""

import hashlib

import dagster as dg
import pytest

from btc_assets_tests.conftest import KLINES_DIR


def mat(result, key):
    return [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(key)]


def test_bronze_keeps_the_file_byte_for_byte(built):
    f = built.root / "lake" / "bronze" / "data/futures/um/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-05.zip"
    original = (KLINES_DIR / "BTCUSDT-1m-2024-01-05.zip").read_bytes()
    assert f.read_bytes() == original
    assert f.with_name(f.name + ".CHECKSUM").read_text().split()[0] == hashlib.sha256(original).hexdigest()
    rows = built.sql("SELECT sha256, bytes, source FROM bronze.files WHERE relpath LIKE '%2024-01-05.zip'")
    assert rows == [(hashlib.sha256(original).hexdigest(), len(original), "archive")]


def test_single_day_bronze_metadata_has_checksum_and_size(built):
    res = built.run([["bronze", "klines_1m"]], partition_key="2024-01-03")
    meta = mat(res, ["bronze", "klines_1m"])[0].event_specific_data.materialization.metadata
    data = (KLINES_DIR / "BTCUSDT-1m-2024-01-03.zip").read_bytes()
    assert meta["sha256"].value == hashlib.sha256(data).hexdigest() and meta["byte_size"].value == len(data)


def test_silver_has_every_minute_once_and_checks_pass(built):
    assert built.sql("SELECT count(*), count(DISTINCT open_time) FROM silver.klines_1m") == [(14400, 14400)]
    assert built.sql("SELECT count(*) FROM silver.klines_5m") == [(2880,)]
    assert built.sql("SELECT count(*) FROM silver.klines_1h") == [(240,)]
    assert built.sql("SELECT typeof(open_time) FROM silver.klines_1m LIMIT 1") == [("TIMESTAMP",)]
    res = built.run([["silver", "klines_1m"]], partition_key="2024-01-04")
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    assert checks == {"klines_1m_has_every_minute": True, "klines_1m_ohlc_consistent": True,
                      "klines_1m_matches_schema": True, "klines_1m_halts_listed": True}


def test_rematerializing_a_day_replaces_exactly_that_day(built):
    before = built.sql("SELECT count(*), round(sum(close), 4) FROM silver.klines_1m")
    built.run([["silver", "klines_1m"]], partition_key="2024-01-06")
    built.run([["silver", "klines_1m"]], partition_key="2024-01-06")
    assert built.sql("SELECT count(*), round(sum(close), 4) FROM silver.klines_1m") == before


def test_funding_on_the_8h_grid(built):
    rows = built.sql("SELECT count(*), min(funding_time), count(*) FILTER (WHERE hour(funding_time) % 8 <> 0 "
                     "OR minute(funding_time) <> 0) FROM silver.funding_rates")
    assert rows[0][0] == 93 and rows[0][2] == 0


def test_gold_features_and_labels_with_checks(built):
    res = built.run([["gold", "features"], ["gold", "labels"]], partition_key="2024-01-09")
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    drift = checks.pop("features_drift")  # a warning: it may name drifting features, it never blocks
    assert drift in (True, False)
    assert checks == {"features_match_schema": True, "features_finite_after_warmup": True,
                      "features_availability_observed": True, "features_point_in_time": True,
                      "features_warmup_confirmed": True}
    (n, warm), = built.sql("SELECT count(*), count(*) FILTER (WHERE warmed_up) FROM gold.features "
                           "WHERE open_time >= '2024-01-09' AND open_time < '2024-01-10'")
    assert n == 1440 and warm == 1440  # three previous days of silver warm every 1m-5m indicator up
    (labels,), = built.sql("SELECT count(label) FROM gold.labels WHERE open_time < '2024-01-10'")
    assert labels == 9 * 1440  # the next day is known for every day but the last
    # this warehouse has the klines only: the console says which features are null and why, not only the metadata
    import logging

    said = [r.user_message for r in built.instance.all_logs(res.run_id) if r.level >= logging.WARNING]
    null = [m for m in said if "features are null because their sources are absent" in m]
    assert null and "order_flow_1m" in null[0] and "gold/features 2024-01-09..2024-01-09" in null[0]
    assert "liquidations" not in null[0]  # live-only: absent from every archive build, not worth a warning


def _declare(source, minutes):
    import dataclasses

    import pandas as pd

    from btc_assets.lib.research.features import pit
    return source, dataclasses.replace(pit.SOURCES[source], delay=pd.Timedelta(minutes=minutes),
                                       rule=f"{minutes} minutes after open (planted)")


def _centred(monkeypatch):
    import pandas as pd

    from btc_assets.lib.research.features import volatility
    real = volatility.compute

    def centred(ctx):
        out = real(ctx)
        out["rv_15"] = pd.Series(out["rv_15"]).rolling(5, center=True).mean().to_numpy()
        return out
    monkeypatch.setattr(volatility, "compute", centred)


@pytest.mark.parametrize("plant, feature, declared", [
    ("15m at its open", "rsi_14_15m", True),
    ("1h one minute early", "sma_ratio_20_1h", True),
    ("centred window", "rv_15", False),
])
def test_a_planted_leak_is_refused_by_a_blocking_check_naming_it_and_never_published(built, monkeypatch, plant,
                                                                                     feature, declared):
    """Each leak fails the gold/features point-in-time checks naming the feature (and, for a wrong declaration,
    the source); gold.features keeps the previous good rows of the day."""
    from btc_assets.lib.research.features import pit
    day = "open_time >= '2024-01-09' AND open_time < '2024-01-10'"
    before = built.sql(f"SELECT count(*), round(sum({feature}), 6) FROM gold.features WHERE {day}")
    if plant == "centred window":
        _centred(monkeypatch)
    else:
        monkeypatch.setitem(pit.SOURCES, *_declare(*{"15m at its open": ("klines_15m", 0),
                                                     "1h one minute early": ("klines_1h", 59)}[plant]))
    res = built.run([["gold", "features"]], partition_key="2024-01-09", raise_on_error=False)
    evals = {c.check_name: c for c in res.get_asset_check_evaluations()}
    declaration, recomputed = evals["features_availability_observed"], evals["features_point_in_time"]
    assert not recomputed.passed and feature in recomputed.metadata["features_mismatching"].value
    assert declaration.passed is not declared
    if declared:
        leaks = declaration.metadata["leaks"].value
        assert len(leaks) == 1 and "(planted)" in leaks[0] and "early" in leaks[0] and "pit.py" in leaks[0]
    assert not res.success  # blocking
    assert built.sql(f"SELECT count(*), round(sum({feature}), 6) FROM gold.features WHERE {day}") == before


def test_triple_barrier_label_through_the_labels_asset(built):
    """By config, gold/labels stores the triple-barrier label; the horizon it looks ahead is stored with it."""
    cfg = {"ops": {"gold__labels": {"config": {"kind": "triple_barrier", "horizon": 15, "take_profit_atr": 2.0,
                                                "stop_loss_atr": 2.0}}}}
    res = built.run([["gold", "labels"]], partition_key="2024-01-07", run_config=cfg)
    meta = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    rows = built.sql("SELECT count(*), count(label), min(horizon_minutes), max(horizon_minutes), "
                     "count(DISTINCT label) FROM gold.labels WHERE open_time >= '2024-01-07' AND open_time < '2024-01-08'")
    n, known, hmin, hmax, classes = rows[0]
    assert n == 1440 and known >= 1440 - 15 and hmin == hmax == 15 and classes == 3
    assert any("BUY" in k or "buy" in k.lower() for k in meta)  # class balance reported per partition
    built.run([["gold", "labels"]], partition_key="2024-01-07")  # back to the default label for the other tests
    assert built.sql("SELECT max(horizon_minutes) FROM gold.labels WHERE open_time >= '2024-01-07' "
                     "AND open_time < '2024-01-08'") == [(3,)]


def test_a_range_run_gives_each_partition_its_own_rows_range_and_schema(built):
    res = built.run([["silver", "klines_1m"], ["gold", "features"]], first="2024-01-08", last="2024-01-09")
    meta = {(tuple(e.asset_key.path), e.partition): e.event_specific_data.materialization.metadata
            for e in res.get_asset_materialization_events()}
    for layer in (("silver", "klines_1m"), ("gold", "features")):
        day = meta[(layer, "2024-01-09")]
        assert day["rows"].value == 1440 and day["first_bar"].value == "2024-01-09 00:00"
        assert day["last_bar"].value == "2024-01-09 23:59"
        assert meta[(layer, "2024-01-08")]["first_bar"].value == "2024-01-08 00:00"
        names = [c.name for c in day["dagster/column_schema"].value.columns]
        assert names[0] == "open_time" and len(day["preview"].value.records) == 5
    assert meta[(("gold", "features"), "2024-01-09")]["warmed_up_rows"].value == 1440
    assert "rsi_14_1m" in [c.name for c in meta[(("gold", "features"), "2024-01-09")]["dagster/column_schema"]
                           .value.columns]
