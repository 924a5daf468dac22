"""Cost-aware decisions end to end on real sample days: labels beyond the round-trip cost (stated), a calibrated
XGBoost whose stored edge rule and meta-label model decide the walk-forward, the batch signals and the trader alike."""

import dagster as dg
import pytest

from btc_assets.lib.research.models import decision, tracking, xgb
from btc_assets_tests.defs.conftest import ten_days, train_config

WEEK = "2024-01-08"


@pytest.fixture(scope="module")
def meta(tmp_path_factory, sample_archive):
    with dg.instance_for_test() as instance:
        p = ten_days(tmp_path_factory.mktemp("meta"), sample_archive, instance)
        cfg = train_config()
        cfg["ops"]["models__xgb_model"]["config"] |= {"meta_labelling": True, "calibration": "isotonic",
                                                      "decision": "edge"}
        res = p.run([["models", "xgb_model"]], partition_key=WEEK, run_config=cfg)
        p.run([["models", "signals"]], first="2024-01-08", last="2024-01-09")
        yield p, res


def test_labels_state_their_cost_threshold(meta):
    p, _ = meta
    res = p.run([["gold", "labels"]], partition_key="2024-01-05")
    m = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert m["label_threshold"].value > decision.round_trip_cost(0.0005, 1.0)  # fees + fixed slippage + volatility
    assert m["label_threshold_rule"].value.startswith("round-trip cost")
    cfg = {"ops": {"gold__labels": {"config": {"threshold": 0.002}}}}
    res = p.run([["gold", "labels"]], partition_key="2024-01-05", run_config=cfg)
    m = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert m["label_threshold"].value == 0.002 and m["label_threshold_rule"].value.startswith("configured")
    bad = {"ops": {"gold__labels": {"config": {"threshold": -0.1}}}}
    res = p.run([["gold", "labels"]], partition_key="2024-01-05", run_config=bad, raise_on_error=False)
    assert not res.success
    p.run([["gold", "labels"]], partition_key="2024-01-05")  # back to the default


def test_the_registered_booster_carries_its_calibration_edge_rule_and_meta_model(meta):
    p, res = meta
    (rule, said, uri), = p.sql("SELECT decision_rule, decision, model_uri FROM models.xgb_models")
    assert "isotonic-calibrated expected return beats the round-trip cost" in said and "meta-label" in said
    edge = decision.EdgeRule.from_json(rule)
    assert edge.cost > 0.0012 and edge.class_returns[0] < 0 < edge.class_returns[2]
    store = p.resources["mlflow"]
    booster = tracking.load_xgb(store, uri)
    assert booster.attr("decision") == rule and decision.Calibrator.from_json(booster.attr("calibration"))
    assert ("meta_model" in booster.attributes()) == ("meta-label model fitted" in said)
    meta_md = res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata
    assert "decision" in meta_md and 0.0 <= meta_md["oos_signals_traded"].value <= 1.0


def test_batch_signals_are_the_stored_decision(meta):
    p, _ = meta
    (uri,), = p.sql("SELECT model_uri FROM models.xgb_models")
    booster = tracking.load_xgb(p.resources["mlflow"], uri)
    with p.resources["warehouse"].get_connection() as conn:
        feats = conn.execute("SELECT * FROM gold.features WHERE open_time >= '2024-01-08' "
                             "AND open_time < '2024-01-10' ORDER BY open_time").df()
    _, expected = xgb.predict_signal(booster, feats, xgb.features_of(booster))
    got = [r[0] for r in p.sql("SELECT signal FROM models.signals ORDER BY open_time")]
    assert len(got) == len(expected) and (got == expected.tolist())
