"""The models layer, gathered for Definitions (load_assets_from_modules reads this module's attributes).

* models/xgb_model, models/lstm_model (weekly): trained on the weeks before their week, walk-forward evaluated,
  registered in MLflow, promoted by a blocking check;
* models/transformer_model (weekly): the Transformer encoder in the same skeleton;
* models/tft_model (weekly) and models/regime_forecast (daily): the Temporal Fusion Transformer's multi-day
  quantile forecasts on the hourly history, a regime filter for the trading rules;
* models/ensemble (weekly): both of them, trading only where they agree;
* models/rf_daily_baseline: the daily random-forest reference; models/rf_daily_selection: its greedy forward
  feature selection (nested, hold-out, deflated Sharpe);
* models/signals (daily): out-of-sample predictions of the promoted trading model (the backtest's input);
* models/study (weekly, on demand): Optuna study / forward feature selection, every trial an MLflow child run,
  deflated Sharpe and PBO (WARN check study_not_overfit).
See common.py for the two walk-forwards and the promotion rule.
"""

from btc_assets.defs.models.daily_selection import DEMO_CONFIG as DAILY_SELECTION_DEMO_CONFIG
from btc_assets.defs.models.daily_selection import DailySelectionConfig, rf_daily_selection
from btc_assets.defs.models.ensemble_model import ensemble
from btc_assets.defs.models.lstm_model import DEMO_CONFIG as LSTM_DEMO_CONFIG
from btc_assets.defs.models.lstm_model import LstmTrainingConfig, lstm_model
from btc_assets.defs.models.rf_baseline import RfDailyConfig, rf_daily_baseline
from btc_assets.defs.models.signals import SIGNAL_TYPES, signal_frame, signals
from btc_assets.defs.models.study import StudySettings, study
from btc_assets.defs.models.tft_model import DEMO_CONFIG as TFT_DEMO_CONFIG
from btc_assets.defs.models.tft_model import TftTrainingConfig, regime_forecast, tft_model
from btc_assets.defs.models.transformer_model import DEMO_CONFIG as TRANSFORMER_DEMO_CONFIG
from btc_assets.defs.models.transformer_model import TransformerTrainingConfig, transformer_model
from btc_assets.defs.models.xgb_model import DEMO_CONFIG as XGB_DEMO_CONFIG
from btc_assets.defs.models.xgb_model import XgbTrainingConfig, xgb_model

__all__ = ["ensemble", "lstm_model", "rf_daily_baseline", "signals", "xgb_model", "XgbTrainingConfig",
           "LstmTrainingConfig", "RfDailyConfig", "LSTM_DEMO_CONFIG", "XGB_DEMO_CONFIG", "SIGNAL_TYPES", "signal_frame",
           "study", "StudySettings", "transformer_model", "TransformerTrainingConfig", "TRANSFORMER_DEMO_CONFIG",
           "tft_model", "regime_forecast", "TftTrainingConfig", "TFT_DEMO_CONFIG",
           "rf_daily_selection", "DailySelectionConfig", "DAILY_SELECTION_DEMO_CONFIG"]
