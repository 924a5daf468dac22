"""Which model trades a week: its promoted model; while it is not trained yet, the previous promoted one (said);
a refused model hands nothing over unless asked to; no promoted model at all is NoModel, never a guess."""

import duckdb
import pandas as pd
import pytest

from btc_assets.lib.research.models import registry
from btc_assets.lib.storage.warehouse import ensure_table, replace_window


def week(d: str) -> pd.Timestamp:
    return pd.Timestamp(d, tz="UTC")


def add(conn, d: str, promoted: bool, version: str) -> None:
    row = {k: None for k in registry.REGISTRY_TYPES} | {
        "week_start": week(d), "family": "xgb", "registered_name": "btc_assets_xgb_next3m", "model_version": version,
        "model_uri": f"models:/btc_assets_xgb_next3m/{version}", "promoted": promoted,
        "reason": "promoted" if promoted else "loses after costs"}
    ensure_table(conn, "models.xgb_models", registry.REGISTRY_TYPES)
    replace_window(conn, "models.xgb_models", registry.REGISTRY_TYPES, pd.DataFrame([row]), "week_start",
                   week(d), week(d) + pd.Timedelta(weeks=1))


@pytest.fixture
def conn():
    c = duckdb.connect()
    add(c, "2024-01-01", True, "1")
    add(c, "2024-01-08", False, "2")
    return c


def test_the_weeks_own_promoted_model(conn):
    model, said = registry.trading_model(conn, week("2024-01-01"))
    assert model["model_version"] == "1" and said == ""


def test_an_untrained_week_is_handed_the_previous_promoted_model_and_says_so(conn):
    model, said = registry.trading_model(conn, week("2024-01-15"))  # Monday before the retrain: nothing trained
    assert model["model_version"] == "1"
    assert said.startswith("handover: the xgb model of the week starting 2024-01-15 is not trained yet")
    assert "week starting 2024-01-01 (btc_assets_xgb_next3m v1) keeps trading" in said


def test_a_refused_week_hands_nothing_over_by_default(conn):
    with pytest.raises(registry.NotPromoted, match="is not promoted: loses after costs"):
        registry.trading_model(conn, week("2024-01-08"))
    model, said = registry.trading_model(conn, week("2024-01-08"), handover="until_promoted")
    assert model["model_version"] == "1" and "is not promoted" in said


def test_nothing_to_hand_over_is_no_model(conn):
    with pytest.raises(registry.NoModel, match="no earlier promoted one to hand over"):
        registry.trading_model(conn, week("2023-12-25"))
    with pytest.raises(ValueError, match="handover 'forever' is unknown"):
        registry.trading_model(conn, week("2024-01-01"), handover="forever")
