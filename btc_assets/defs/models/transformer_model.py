"""models/transformer_model: the PyTorch Transformer for a trading week, evaluated walk-forward, registered, promoted
or not, in the same training skeleton as XGBoost and the LSTM (common.train_family: the same rows, folds, purge
and embargo, scaling on training folds, after-cost trading of the folds, leak detectors, MLflow metric names).

Defaults: 60-bar windows, d_model 64, 4 heads, 2 encoder layers, sinusoidal positional encoding; the demo runs a
small configuration (DEMO_CONFIG) so that the whole demo graph stays within minutes on 2 CPU cores.
"""

import dataclasses
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from dagster_duckdb import DuckDBResource

from btc_assets.defs import partitions
from btc_assets.defs.models import common
from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.defs.resources.trading import TradingResource
from btc_assets.lib.research.models import tracking
from btc_assets.lib.research.models.device import select_device

if TYPE_CHECKING:  # torch is imported only where a Transformer is trained
    from btc_assets.lib.research.models import transformer

KEY = ["models", "transformer_model"]


class TransformerTrainingConfig(common.WalkForwardSettings):
    window: int = 60
    d_model: int = 64
    heads: int = 4
    layers: int = 2
    feedforward: int = 128
    dropout: float = 0.1
    positional: str = "sinusoidal"  # sinusoidal | learned | none
    pooling: str = "last"  # last | mean
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 5e-4
    stride: int = 5
    max_train_samples: int = 0
    seed: int = 7
    device: str = "auto"

    def params(self) -> "transformer.TransformerParams":
        from btc_assets.lib.research.models import transformer

        fields = dataclasses.fields(transformer.TransformerParams)
        return transformer.TransformerParams(**{f.name: getattr(self, f.name) for f in fields})


# Small enough for `make demo` on 2 shared cores; the architecture's shape is the same.
DEMO_CONFIG = {"window": 30, "d_model": 16, "heads": 2, "layers": 1, "feedforward": 32, "epochs": 3, "stride": 10,
               "max_train_samples": 4000, "n_folds": 2}


@dg.asset(
    key=KEY,
    ins=common.TRAINING_INS,
    group_name="models",
    partitions_def=partitions.weekly,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of weeks in one run (common.each_week)
    pool="training",
    kinds={"pytorch", "mlflow"},
    check_specs=[common.promotion_spec("transformer", KEY, partitions.weekly)],
    description=f"PyTorch Transformer encoder (torch's multi-head attention blocks, positional encoding) on windows "
    f"of the last bars of gold features for the trading week, trained on the {common.TRAIN_WEEKS} weeks before it; "
    "SELL/HOLD/BUY probabilities and a confidence; walk-forward metrics beside the baselines and after costs; "
    "registered in MLflow (mlflow.pytorch) and promoted only on that evidence.",
)
def transformer_model(context: dg.AssetExecutionContext, config: TransformerTrainingConfig,
                      warehouse: DuckDBResource, mlflow: MlflowResource, trading: TradingResource):
    from btc_assets.lib.research.models import transformer  # torch loads here only

    try:
        params = config.params()
    except ValueError as exc:
        raise dg.Failure(f"models/transformer_model config: {exc}") from None
    features = config.feature_list()
    device = select_device(params.device)

    def fit_final(split, policy) -> common.FinalModel:
        model = transformer.train(split.train, split.validation, features, params)
        said = transformer.attach_decision(model.net, split.train, split.validation, policy)
        x = split.validation[features].to_numpy(dtype=np.float32)
        ends = transformer.window_ends(split.validation["open_time"], params.window)[-2:]
        speed = float(np.mean(model.samples_per_second))
        proba = transformer.predict_proba(model.net, split.validation)
        conf = float(np.mean(transformer.confidence(proba)))
        return common.FinalModel(
            params={**params.as_dict(), "device_used": device},
            log_model=tracking.lstm_logger(model.net, transformer.gather(x, ends, params.window).numpy()),
            metadata={"best_epoch": model.best_epoch, "train_samples_per_second": speed, "device": device,
                      "decision_fit": said, "validation_mean_confidence": conf},
            overall={"train_samples_per_second": speed, "validation_mean_confidence": conf},
            decided={"rule": model.net.decision_json, "text": said})

    yield from common.train_family(context, "transformer", config, warehouse, mlflow, trading,
                                   lambda policy: transformer.fit_predict(features, params, policy), fit_final,
                                   policy_aware=True)
