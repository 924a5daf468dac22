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
from btc_assets.defs.resources import MlflowResource
from btc_assets.lib.features import FEATURE_NAMES
from btc_assets.lib.models import tracking, xgb
from btc_assets.lib.models.device import select_device
from btc_assets.lib.models.walk_forward import run_walk_forward

if TYPE_CHECKING:  # torch is imported only where an LSTM is trained
    from btc_assets.lib.models import lstm

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
        from btc_assets.lib.models import lstm

        # Dagster needs the fields declared on the config; their values go over by name, none can be forgotten
        return lstm.LstmParams(**{f.name: getattr(self, f.name) for f in dataclasses.fields(lstm.LstmParams)})


# Small enough for `make demo` (about 10-20 s a week on 2 shared cores); the architecture's shape is the same.
DEMO_CONFIG = {"window": 30, "hidden": 32, "dense": 16, "epochs": 3, "stride": 10, "max_train_samples": 4000,
               "n_folds": 2}


@dg.asset(
    key=KEY,
    ins={"features": dg.AssetIn(["gold", "features"], partition_mapping=common.train_mapping, dagster_type=dg.Nothing),
         "labels": dg.AssetIn(["gold", "labels"], partition_mapping=common.train_mapping, dagster_type=dg.Nothing)},
    group_name="models",
    partitions_def=partitions.weekly,
    pool="duckdb",
    kinds={"pytorch", "mlflow"},
    check_specs=[common.promotion_spec("lstm", KEY)],
    description=f"PyTorch LSTM on windows of the last bars of gold features for the trading week, trained on the "
    f"{common.TRAIN_WEEKS} weeks before it; walk-forward metrics beside the baselines; registered in MLflow "
    "(mlflow.pytorch) and promoted only if it beats the baselines.",
)
def lstm_model(context: dg.AssetExecutionContext, config: LstmTrainingConfig, warehouse: DuckDBResource,
               mlflow: MlflowResource):
    from btc_assets.lib.models import lstm  # torch loads here, not in every process that loads the definitions

    week_start = common.week_of(context)
    with warehouse.get_connection() as conn:
        rows, horizon = common.load_training_rows(conn, week_start, config.min_train_days)
    params = config.params()
    wf = run_walk_forward(rows, lstm.fit_predict(FEATURE_NAMES, params), config.walk_forward(horizon), horizon)
    split = xgb.chronological_split(rows, validation_fraction=config.validation_fraction, test_fraction=0.0,
                                    purge_minutes=horizon)
    model = lstm.train(split.train, split.validation, FEATURE_NAMES, params)
    x = split.validation[FEATURE_NAMES].to_numpy(dtype=np.float32)
    ends = lstm.window_ends(split.validation["open_time"], params.window)[-2:]
    example = lstm.gather(x, ends, params.window).numpy()
    logged = tracking.log_run(
        mlflow, "lstm", params={**params.as_dict(), **config.model_dump(), "n_features": len(FEATURE_NAMES),
                                "label_horizon_minutes": horizon, "device_used": select_device(params.device)},
        overall={**wf.overall, "train_samples_per_second": float(np.mean(model.samples_per_second))},
        fold_metrics=wf.fold_metrics,
        tags={"week_start": f"{week_start:%Y-%m-%d}", "dagster_run_id": context.run.run_id},
        log_model=tracking.lstm_logger(model.net, example))
    with warehouse.get_connection() as conn:
        row = common.record(conn, "lstm", week_start, logged, wf, rows)
    context.log.info(f"lstm week {week_start:%Y-%m-%d}: {'promoted' if row['promoted'] else 'NOT promoted'} "
                     f"({row['reason']})")
    yield dg.MaterializeResult(metadata=common.metadata(logged, wf, row, {
        "train_rows": len(split.train), "validation_rows": len(split.validation), "best_epoch": model.best_epoch,
        "train_samples_per_second": float(np.mean(model.samples_per_second)),
        "device": select_device(params.device)}))
    yield common.promotion_check("lstm_model_beats_baselines", row)
