"""models/lstm_model: the PyTorch LSTM for a trading week, evaluated walk-forward, registered, promoted or not.

Defaults are the issue's architecture (LSTM(128) -> Dense(64) -> softmax, 60-bar windows of every gold feature);
the demo runs a small configuration (DEMO_CONFIG) so that the whole demo graph stays within minutes on 2 CPU cores.
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

if TYPE_CHECKING:  # torch is imported only where an LSTM is trained
    from btc_assets.lib.research.models import lstm

KEY = ["models", "lstm_model"]


class LstmTrainingConfig(common.WalkForwardSettings):
    window: int = 60
    hidden: int = 128
    dense: int = 64
    layers: int = 1
    dropout: float = 0.0
    epochs: int = 10
    patience: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    stride: int = 5  # every 5th training window: neighbours share 59 of 60 bars
    max_train_samples: int = 0
    seed: int = 7
    device: str = "auto"  # CUDA when present, else CPU

    def params(self) -> "lstm.LstmParams":  # torch is imported only where an LSTM is trained
        from btc_assets.lib.research.models import lstm

        # Dagster needs the fields declared on the config; their values go over by name, none can be forgotten
        return lstm.LstmParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(lstm.LstmParams)})


# Small enough for `make demo` (about 10-20 s a week on 2 shared cores); the architecture's shape is the same.
DEMO_CONFIG = {"window": 30, "hidden": 32, "dense": 16, "epochs": 3, "stride": 10, "max_train_samples": 4000,
               "n_folds": 2}


@dg.asset(
    key=KEY,
    ins=common.TRAINING_INS,
    group_name="models",
    partitions_def=partitions.weekly,
    backfill_policy=dg.BackfillPolicy.single_run(),  # a range of weeks in one run (common.each_week)
    pool="training",
    kinds={"pytorch", "mlflow"},
    check_specs=[common.promotion_spec("lstm", KEY, partitions.weekly)],
    description=f"PyTorch LSTM on windows of the last bars of gold features for the trading week, trained on the "
    f"{common.TRAIN_WEEKS} weeks before it; walk-forward metrics beside the baselines; registered in MLflow "
    "(mlflow.pytorch) and promoted only if it beats the baselines.",
)
def lstm_model(context: dg.AssetExecutionContext, config: LstmTrainingConfig, warehouse: DuckDBResource,
               mlflow: MlflowResource, trading: TradingResource):
    from btc_assets.lib.research.models import lstm  # torch loads here, not in every process that loads the definitions

    params = config.params()
    features = config.feature_list()
    device = select_device(params.device)

    def fit_final(split, policy) -> common.FinalModel:
        model = lstm.train(split.train, split.validation, features, params)
        said = lstm.attach_decision(model.net, split.train, split.validation, policy)
        x = split.validation[features].to_numpy(dtype=np.float32)
        ends = lstm.window_ends(split.validation["open_time"], params.window)[-2:]
        speed = float(np.mean(model.samples_per_second))
        return common.FinalModel(
            params={**params.as_dict(), "device_used": device},
            log_model=tracking.lstm_logger(model.net, lstm.gather(x, ends, params.window).numpy()),
            metadata={"best_epoch": model.best_epoch, "train_samples_per_second": speed, "device": device,
                      "decision_fit": said},
            overall={"train_samples_per_second": speed},
            decided={"rule": model.net.decision_json, "text": said})

    yield from common.train_family(context, "lstm", config, warehouse, mlflow, trading,
                                   lambda policy: lstm.fit_predict(features, params, policy), fit_final,
                                   policy_aware=True)
