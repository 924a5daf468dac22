"""LSTM: complete windows only, seeded reproducibility, a scaler fitted on training rows, MLflow round trip."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from btc_assets.lib.research.models import decision, lstm, tracking
from btc_assets.lib.research.models.device import select_device
from btc_assets_tests.lib.research.models.synthetic import rows

SMALL = lstm.LstmParams(window=8, hidden=8, dense=4, epochs=2, batch_size=128, stride=2, seed=11, device="cpu")


def test_windows_end_only_after_consecutive_minutes():
    t = pd.Series(pd.date_range("2024-01-01", periods=10, freq="1min", tz="UTC"))
    t = pd.concat([t[:6], t[7:]], ignore_index=True)  # minute 6 missing
    assert lstm.window_ends(t, 3).tolist() == [2, 3, 4, 5, 8]  # rows 6, 7 would span the gap


def test_training_is_reproducible_with_a_seed_and_uses_training_rows_for_scaling():
    df = rows(n=1500)
    df["f1"] = df["f1"] * 1000 + 5  # a badly scaled feature: the net standardises it
    train, val, test = df[:1000], df[1000:1200], df[1200:]
    a = lstm.train(train, val, ["f0", "f1"], SMALL)
    b = lstm.train(train, val, ["f0", "f1"], SMALL)
    pa, pb = lstm.predict_proba(a, test, context=val), lstm.predict_proba(b, test, context=val)
    np.testing.assert_array_equal(pa, pb)
    assert pa.shape == (300, 3) and np.allclose(pa.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(a.net.mean.numpy()[1], train["f1"].mean(), rtol=1e-5)  # training rows only
    assert a.samples_per_second and all(s > 0 for s in a.samples_per_second)
    assert select_device("auto") in ("cpu", "cuda")


def test_rows_without_a_full_window_get_the_training_prior():
    df = rows(n=1300)
    m = lstm.train(df[:1000], df[1000:1200], ["f0", "f1"], SMALL)
    p = lstm.predict_proba(m, df[1200:1210])  # no context: the first window-1 rows are incomplete
    np.testing.assert_allclose(p[:SMALL.window - 1], np.tile(m.net.prior.numpy(), (SMALL.window - 1, 1)), rtol=1e-6)


def test_save_and_load_round_trip_through_mlflow(tmp_path):
    """The net travels with its calibration and edge rule: the loaded one decides as the trained one."""
    df = rows(n=1300)
    m = lstm.train(df[:1000], df[1000:1200], ["f0", "f1"], SMALL)
    said = lstm.attach_decision(m.net, df[:1000], df[1000:1200], decision.DecisionPolicy(cost=0.0005))
    assert said.startswith("calibration isotonic") and m.net.decision_json

    class Store:
        tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"

        def activate(self, experiment: str) -> str:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)  # the registry too: never one an earlier test left set
            exp = mlflow.get_experiment_by_name(experiment)
            return exp.experiment_id if exp else mlflow.create_experiment(
                experiment, artifact_location=f"{tmp_path}/artifacts")

    x = df[["f0", "f1"]].to_numpy(dtype=np.float32)
    example = lstm.gather(x, np.array([20, 21]), SMALL.window).numpy()
    logged = tracking.log_run(Store(), "lstm", params=SMALL.as_dict(), overall={"accuracy": 0.5, "majority_accuracy": 0.4},
                              fold_metrics=[{"accuracy": 0.5}], tags={"week_start": "2024-01-08"},
                              log_model=tracking.lstm_logger(m.net, example))
    assert logged.version == "1" and logged.registered_name == "btc_assets_lstm_next3m"
    loaded = tracking.load_lstm(Store(), logged.model_uri)
    test = df[1200:]
    np.testing.assert_allclose(lstm.predict_proba(loaded, test, df[1100:1200]),
                               lstm.predict_proba(m, test, df[1100:1200]), rtol=1e-6)
    ctx = df[1100:1200]
    assert (lstm.predict_signal(loaded, test, ctx)[1] == lstm.predict_signal(m.net, test, ctx)[1]).all()
    # a cost beyond any expected edge: the net holds everywhere
    lstm.attach_decision(m.net, df[:1000], df[1000:1200], decision.DecisionPolicy(cost=1.0))
    assert (lstm.predict_signal(m.net, test, df[1100:1200])[1] == 1).all()
    info = mlflow.models.get_model_info(logged.model_uri)
    assert info.signature is not None and info.saved_input_example_info is not None
    run = mlflow.get_run(logged.run_id)
    assert {"test_accuracy", "majority_accuracy"} <= set(run.data.metrics)
    assert [m.step for m in mlflow.tracking.MlflowClient().get_metric_history(logged.run_id, "fold_test_accuracy")] == [0]


@pytest.mark.parametrize("bad", ["gpu"])
def test_an_unknown_device_is_refused(bad):
    with pytest.raises(ValueError, match="auto, cuda, cpu"):
        select_device(bad)
