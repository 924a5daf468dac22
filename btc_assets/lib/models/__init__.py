"""Model training, evaluation and tracking (plain Python: XGBoost, MLflow)."""
