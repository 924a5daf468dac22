"""backtest/report refuses missing inputs with the table and the asset to materialize (default run, not slow)."""

import dagster as dg
import pytest

from btc_assets.defs.backtest import assets as backtest
from btc_assets.defs.resources import local_resources
from btc_assets_tests.lib.research.backtest.test_report_asset import _seed


def test_a_missing_silver_table_is_named_with_the_asset_to_materialize(tmp_path):
    resources = local_resources(tmp_path)
    with resources["warehouse"].get_connection() as conn:
        _seed(conn)
        conn.execute("DROP TABLE silver.funding_rates")
    with dg.instance_for_test() as instance:
        with pytest.raises(dg.Failure, match="silver.funding_rates does not exist: materialize silver/funding_rates"):
            dg.materialize([backtest.report], resources=resources, instance=instance)
