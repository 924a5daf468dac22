"""Log a backtest to MLflow beside the model versions it tested (experiment "btc_assets.backtest").

One run per materialization: the costs, risk and exchange-rules version as params, every finite metric of the
strategy (buy-and-hold and random entry prefixed), the report page as an artifact, and tags naming the models
(``model_versions`` = all of them, comma-separated, and one ``model.<name>`` tag per version) so a model's page in
MLflow can be found from its backtests and back.
"""

import math
from dataclasses import asdict

import pandas as pd

from btc_assets.defs.resources.storage import MlflowResource
from btc_assets.lib.research.backtest import BacktestResult
from btc_assets.lib.research.backtest.metrics import Evaluation
from btc_assets.lib.research.models.tracking import ui_url

EXPERIMENT = "btc_assets.backtest"
REPORT_ARTIFACT = "backtest.html"


def _finite(prefix: str, d: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}{k}": float(v) for k, v in d.items() if v is not None and math.isfinite(float(v))}


def log_backtest(store: MlflowResource, result: BacktestResult, ev: Evaluation, models: list[str], report_html: str,
                 period: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[str, str]:
    """Log the run; return its MLflow UI link and the link that opens the report page in the UI."""
    import mlflow

    experiment_id = store.activate(EXPERIMENT)
    tags = {"model_versions": ",".join(models), "period": f"{period[0]} .. {period[1]}",
            "price_for_liquidation_and_funding": result.mark_source, "exchange_rules": result.rules.version,
            **{f"model.{m}": "tested" for m in models}}
    params = {**{f"costs.{k}": v for k, v in asdict(result.costs).items()},
              **{f"risk.{k}": v for k, v in asdict(result.risk).items()}, "initial_equity": result.initial_equity}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest {period[0]:%Y-%m-%d}..{period[1]:%Y-%m-%d}",
                          tags=tags) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({**_finite("", ev.strategy), **_finite("buy_and_hold.", ev.buy_and_hold),
                            **_finite("random_entry.", ev.random_entry)})
        mlflow.log_text(report_html, REPORT_ARTIFACT)  # from memory: works with local and S3 artifact stores
    return ui_url(experiment_id, run.info.run_id), ui_url(experiment_id, run.info.run_id, REPORT_ARTIFACT)
