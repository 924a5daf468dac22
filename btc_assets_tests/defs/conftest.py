"""A small real pipeline (10 sample days, one weekly model) built once per test module, in process."""

from __future__ import annotations

import dagster as dg
import pytest

from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.bronze import assets as bronze
from btc_assets.defs.bronze import market as bronze_market
from btc_assets.defs.gold import assets as gold
from btc_assets.defs.models import assets as models
from btc_assets.defs.resources import local_resources
from btc_assets.defs.silver import funding as silver_funding
from btc_assets.defs.silver import klines as silver_klines
from btc_assets.defs.silver import market as silver_market
from btc_assets.defs.silver import order_flow as silver_order_flow
from btc_assets.defs.trading import assets as trading
from btc_assets.defs.trading import market as trading_market
from btc_assets.defs.trading import pnl as trading_pnl

MODULES = [bronze, bronze_market, silver_klines, silver_market, silver_order_flow, silver_funding, gold, models,
           backtest, trading_market, trading, trading_pnl]
ALL_ASSETS = dg.load_assets_from_modules(MODULES)
DAILY = [["bronze", "klines_1m"], ["silver", "klines_1m"], ["silver", "klines_5m"], ["silver", "klines_15m"],
         ["silver", "klines_1h"], ["silver", "klines_4h"], ["silver", "klines_1d"], ["gold", "features"],
         ["gold", "labels"]]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


class Pipeline:
    """Runs selections of the real assets against one temp data dir and instance."""

    def __init__(self, root, archive_url, instance):
        self.root, self.instance = root, instance
        self.resources = local_resources(root, archive_url=str(archive_url))

    def run(self, keys, partition_key=None, first=None, last=None, run_config=None, tags=None, raise_on_error=True):
        t = dict(tags or {})
        if first:
            t.update({RANGE_START: first, RANGE_END: last})
        return dg.materialize(ALL_ASSETS, selection=[dg.AssetKey(k) for k in keys], partition_key=partition_key,
                              resources=self.resources, instance=self.instance, tags=t, run_config=run_config,
                              raise_on_error=raise_on_error)

    def sql(self, q, params=None):
        with self.resources["warehouse"].get_connection() as conn:
            return conn.execute(q, params or []).fetchall()


@pytest.fixture(scope="module")
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def ten_days(root, sample_archive, instance) -> Pipeline:
    """bronze..gold for 2024-01-01..10 and funding for January."""
    p = Pipeline(root, sample_archive, instance)
    p.run([["bronze", "funding_rates"], ["silver", "funding_rates"]], partition_key="2024-01-01")
    p.run(DAILY, first="2024-01-01", last="2024-01-10")
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_archive, instance):
    return ten_days(tmp_path_factory.mktemp("data"), sample_archive, instance)


@pytest.fixture(scope="session")
def model_instance():
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(scope="session")
def model_pipeline(tmp_path_factory, sample_archive, model_instance):
    """The same 10 days as `built`, shared by the model test modules (they only add model and trading tables)."""
    return ten_days(tmp_path_factory.mktemp("models"), sample_archive, model_instance)


# Walk-forward sized for the few warmed-up days of the 10-day test pipeline.
SMALL_WALK_FORWARD = {"min_train_days": 3, "n_folds": 2, "test_days": 0.5, "embargo_minutes": 30}
SMALL_LSTM = {"window": 10, "hidden": 8, "dense": 4, "epochs": 1, "stride": 20, "max_train_samples": 1500}
SMALL_TRANSFORMER = {"window": 10, "d_model": 8, "heads": 2, "layers": 1, "feedforward": 16, "epochs": 1, "stride": 20,
                     "max_train_samples": 1500}


def train_config(min_days: int = 3, lstm: bool = False, promotion: str = "baselines_only",
                 transformer: bool = False) -> dict:
    """Small fits. `promotion="baselines_only"` (the tests of what happens downstream of a promoted model: a few
    sample days rarely earn an after-cost promotion) turns the after-cost gate off, as the registry row then says;
    the gate itself is tested with promotion="after_costs", the default of every model asset."""
    # baselines_only also trades the most probable class: the mechanics tests need entries from a few days
    gate = {"promotion": promotion, **({"decision": "argmax"} if promotion == "baselines_only" else {})}
    ops = {"models__xgb_model": {"config": {**SMALL_WALK_FORWARD, "min_train_days": min_days, "n_estimators": 60,
                                            "n_jobs": 1, **gate}}}
    if lstm:
        ops["models__lstm_model"] = {"config": {**SMALL_WALK_FORWARD, "min_train_days": min_days, **SMALL_LSTM, **gate}}
    if transformer:
        ops["models__transformer_model"] = {"config": {**SMALL_WALK_FORWARD, "min_train_days": min_days,
                                                       **SMALL_TRANSFORMER, **gate}}
    return {"ops": ops}

