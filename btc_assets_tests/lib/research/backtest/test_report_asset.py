"""backtest/report materialized on its own over 2 real sample days and a rule-based signal (no model needed).

The warehouse is seeded directly (silver tables from the bundled archive, models.signals from a momentum rule
labelled "rule/momentum-test"), so this test does not depend on the feature and model layers. Marked slow (~12 s:
Dagster and MLflow start-up); the default run covers the asset through
btc_assets_tests/defs/test_model_to_orders.py::test_backtest_report_has_metrics_and_a_page.
"""

import io
import zipfile
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest

from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.resources import local_resources
from btc_assets.lib.research.labels import BUY, HOLD, SELL

ARCHIVE = Path(__file__).resolve().parents[4] / "btc_assets" / "sample_data" / "archive" / "data" / "futures" / "um"
DAYS = ["2024-01-08", "2024-01-09"]
pytestmark = pytest.mark.slow


def _csv(path: Path) -> pd.DataFrame:
    with zipfile.ZipFile(path) as zf:
        return pd.read_csv(io.BytesIO(zf.read(zf.namelist()[0])))


def _seed(conn) -> None:
    k = pd.concat([_csv(ARCHIVE / f"daily/klines/BTCUSDT/1m/BTCUSDT-1m-{d}.zip") for d in DAYS])
    bars = pd.DataFrame({"open_time": pd.to_datetime(k["open_time"], unit="ms"), **{c: k[c].astype(float) for c in
                         ("open", "high", "low", "close", "quote_volume")}})
    f = _csv(ARCHIVE / "monthly/fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip")
    funding = pd.DataFrame({"funding_time": pd.to_datetime(f["calc_time"], unit="ms").dt.round("1h"),
                            "rate": f["last_funding_rate"].astype(float)})
    ret = bars["close"].pct_change(5).fillna(0).to_numpy()  # a momentum rule: enough to exercise the engine
    signals = pd.DataFrame({"open_time": bars["open_time"], "model_version": "rule/momentum-test",
                            "signal": np.where(ret > 0.002, BUY, np.where(ret < -0.002, SELL, HOLD))})
    conn.execute("CREATE SCHEMA silver; CREATE SCHEMA models")
    for name, df in (("silver.klines_1m", bars), ("silver.funding_rates", funding), ("models.signals", signals)):
        conn.register("df", df)
        conn.execute(f"CREATE TABLE {name} AS SELECT * FROM df")
        conn.unregister("df")


@pytest.fixture(scope="module")
def materialized(tmp_path_factory):
    root = tmp_path_factory.mktemp("bt_asset")
    resources = local_resources(root)
    with resources["warehouse"].get_connection() as conn:
        _seed(conn)
    with dg.instance_for_test() as instance:
        res = dg.materialize([backtest.report], resources=resources, instance=instance)
        yield root, resources, res.get_asset_materialization_events()[0].event_specific_data.materialization.metadata


def test_metadata_has_the_metrics_the_baselines_and_says_which_price_liquidates(materialized):
    _, _, meta = materialized
    for k in ("total_return", "sharpe", "sortino", "calmar", "max_drawdown", "n_trades", "win_rate", "profit_factor",
              "deflated_sharpe", "buy_and_hold_total_return", "random_entry_total_return", "by_regime"):
        assert k in meta
    assert meta["n_trades"].value > 0
    assert meta["price_for_liquidation_and_funding"].value == "last"  # no silver.mark_price_1m in this warehouse
    assert meta["models"].value == ["rule/momentum-test"]


def test_report_page_and_mlflow_run_name_the_model_version(materialized):
    root, resources, meta = materialized
    html = (root / "lake" / "reports" / "backtest.html").read_text()
    assert "Random entry" in html and "<script src" not in html
    mlflow.set_tracking_uri(resources["mlflow"].tracking_uri)
    run = mlflow.get_run(meta["mlflow_run"].value.rsplit("/", 1)[1])
    assert run.data.tags["model_versions"] == "rule/momentum-test"
    assert run.data.metrics["n_trades"] == meta["n_trades"].value
    assert run.info.experiment_id == mlflow.get_experiment_by_name("btc_assets.backtest").experiment_id

