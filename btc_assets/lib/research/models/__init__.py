"""Model training, evaluation and tracking (plain Python: XGBoost, PyTorch LSTM, random forest, MLflow)."""

import os

# On a shared machine OpenMP's default busy-waiting makes a 2-thread XGBoost fit several times slower than one
# thread (measured: 24 s vs 4 s for 30k rows x 124 features); passive waiting removes that. Must precede the first
# import of xgboost/torch, which read it when their OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
