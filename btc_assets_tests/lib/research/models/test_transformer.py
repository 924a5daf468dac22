"""Transformer family: torch's encoder blocks over complete windows only, nothing after the bar, positional
encodings that matter, the LSTM's scaling/early stopping/calibration, an MLflow round trip, and it learns."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from btc_assets.lib.research.models import decision, tracking, transformer
from btc_assets_tests.lib.research.models.synthetic import rows

SMALL = transformer.TransformerParams(window=8, d_model=16, heads=2, layers=1, feedforward=32, dropout=0.0,
                                      epochs=2, batch_size=128, stride=2, seed=11, device="cpu")


def test_bad_parameters_are_refused_by_name():
    with pytest.raises(ValueError, match="positional='rotary'"):
        transformer.TransformerParams(positional="rotary")
    with pytest.raises(ValueError, match="d_model=10 must be a multiple of heads=4"):
        transformer.TransformerParams(d_model=10, heads=4)
    with pytest.raises(ValueError, match="pooling='max'"):
        transformer.TransformerParams(pooling="max")


def test_training_is_reproducible_and_scales_on_the_training_rows():
    df = rows(n=1500)
    df["f1"] = df["f1"] * 1000 + 5
    train, val, test = df[:1000], df[1000:1200], df[1200:]
    a = transformer.train(train, val, ["f0", "f1"], SMALL)
    b = transformer.train(train, val, ["f0", "f1"], SMALL)
    assert isinstance(a.net, transformer.TransformerNet)
    assert any(isinstance(m, torch.nn.TransformerEncoderLayer) for m in a.net.modules())
    pa, pb = transformer.predict_proba(a, test, context=val), transformer.predict_proba(b, test, context=val)
    np.testing.assert_array_equal(pa, pb)
    assert pa.shape == (300, 3) and np.allclose(pa.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(a.net.mean.numpy()[1], train["f1"].mean(), rtol=1e-5)
    c = transformer.confidence(pa)
    assert ((c >= 0) & (c <= 1)).all()
    assert transformer.confidence(np.array([[1 / 3] * 3]))[0] == pytest.approx(0, abs=1e-9)


def test_a_prediction_sees_its_window_and_nothing_after_it():
    df = rows(n=1300)
    m = transformer.train(df[:1000], df[1000:1200], ["f0", "f1"], SMALL)
    test = df[1200:1300].reset_index(drop=True)
    base = transformer.predict_proba(m, test, context=df[1100:1200])
    later = test.copy()
    later.loc[50:, ["f0", "f1"]] += 5.0  # bars from row 50 on change
    moved = transformer.predict_proba(m, later, context=df[1100:1200])
    np.testing.assert_array_equal(base[:50], moved[:50])  # a window ending before row 50 never sees them
    assert not np.allclose(base[50:58], moved[50:58])  # windows that hold them do


def test_the_positional_encoding_makes_order_matter():
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(4, 8, 2)).astype(np.float32))
    shuffled = x[:, torch.randperm(8)]
    prior = np.array([0.2, 0.6, 0.2])
    nets = {}
    for pos in transformer.POSITIONAL:
        p = transformer.TransformerParams(window=8, d_model=16, heads=2, layers=1, feedforward=32, dropout=0.0,
                                          positional=pos, pooling="mean")
        torch.manual_seed(0)
        nets[pos] = transformer.TransformerNet(["a", "b"], p, np.zeros(2), np.ones(2), prior).eval()
    with torch.no_grad():
        # without a positional encoding a mean-pooled encoder is blind to the order of the bars
        torch.testing.assert_close(nets["none"](x), nets["none"](shuffled), rtol=1e-4, atol=1e-5)
        assert not torch.allclose(nets["sinusoidal"](x), nets["sinusoidal"](shuffled), atol=1e-4)
    assert any(n == "position" for n, _ in nets["learned"].named_parameters())
    assert not any(n == "position" for n, _ in nets["sinusoidal"].named_parameters())


def test_it_learns_a_pattern_that_lives_in_the_window():
    """The label is set by f0 five bars ago: only a model that reads the window's past can know it."""
    rng = np.random.default_rng(3)
    n = 4000
    f0 = rng.normal(size=n)
    lagged = np.concatenate([np.zeros(5), f0[:-5]])
    label = np.where(lagged > 0.6, 2, np.where(lagged < -0.6, 0, 1))
    df = pd.DataFrame({"open_time": pd.date_range("2024-01-01", periods=n, freq="1min", tz="UTC"), "f0": f0,
                       "f1": rng.normal(size=n), "label": label, "fwd_return": 0.0})
    p = transformer.TransformerParams(window=8, d_model=16, heads=2, layers=1, feedforward=32, dropout=0.0,
                                      epochs=8, patience=3, batch_size=64, learning_rate=3e-3, seed=1, device="cpu")
    m = transformer.train(df[:3000], df[3000:3400], ["f0", "f1"], p)
    proba = transformer.predict_proba(m, df[3400:], context=df[3300:3400])
    accuracy = (proba.argmax(axis=1) == df["label"].to_numpy()[3400:]).mean()
    majority = np.bincount(df["label"][:3000]).max() / 3000
    assert accuracy > majority + 0.15, (accuracy, majority)


def test_save_and_load_round_trip_through_mlflow(tmp_path):
    df = rows(n=1300)
    m = transformer.train(df[:1000], df[1000:1200], ["f0", "f1"], SMALL)
    transformer.attach_decision(m.net, df[:1000], df[1000:1200], decision.DecisionPolicy(cost=0.0005))

    class Store:
        tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"

        def activate(self, experiment: str) -> str:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            exp = mlflow.get_experiment_by_name(experiment)
            return exp.experiment_id if exp else mlflow.create_experiment(
                experiment, artifact_location=f"{tmp_path}/artifacts")

    x = df[["f0", "f1"]].to_numpy(dtype=np.float32)
    example = transformer.gather(x, np.array([20, 21]), SMALL.window).numpy()
    logged = tracking.log_run(Store(), "transformer", params=SMALL.as_dict(),
                              overall={"accuracy": 0.5, "majority_accuracy": 0.4}, fold_metrics=[{"accuracy": 0.5}],
                              tags={"week_start": "2024-01-08"}, log_model=tracking.lstm_logger(m.net, example))
    assert logged.registered_name == "btc_assets_transformer_next3m"
    loaded = tracking.load_transformer(Store(), logged.model_uri)
    assert isinstance(loaded, transformer.TransformerNet)
    ctx, test = df[1100:1200], df[1200:]
    np.testing.assert_allclose(transformer.predict_proba(loaded, test, ctx), transformer.predict_proba(m, test, ctx),
                               rtol=1e-5, atol=1e-7)
    assert (transformer.predict_signal(loaded, test, ctx)[1] == transformer.predict_signal(m.net, test, ctx)[1]).all()
