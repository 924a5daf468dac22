"""Metadata a person can read: each partition of a single-run backfill carries its own figures, tables are real
tables with typed schemas, numbers are formatted."""

import dagster as dg
import numpy as np
import pandas as pd

from btc_assets.defs.table_metadata import fmt, frame_table, per_partition, table_metadata

daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")


def _run(withheld: bool = False):
    @dg.asset(partitions_def=daily, backfill_policy=dg.BackfillPolicy.single_run())
    def bars(context: dg.AssetExecutionContext):
        t = pd.date_range("2024-01-01", "2024-01-03", freq="min", inclusive="left", tz="UTC")[:-60]
        df = pd.DataFrame({"open_time": t, "close": np.arange(len(t), dtype=float), "halt": False})
        per_partition(context, df, "open_time", not withheld, extra=lambda d: {"halts": int(d["halt"].sum())})
        return dg.MaterializeResult(metadata={**table_metadata(df), "rows": len(df)})

    with dg.instance_for_test() as instance:
        res = dg.materialize([bars], instance=instance, tags={"dagster/asset_partition_range_start": "2024-01-01",
                                                             "dagster/asset_partition_range_end": "2024-01-03"})
        return {e.partition: e.event_specific_data.materialization.metadata
                for e in res.get_asset_materialization_events()}


def test_each_partition_of_a_range_run_has_its_own_rows_and_range():
    meta = _run()
    assert meta["2024-01-01"]["rows"].value == 1440 and meta["2024-01-02"]["rows"].value == 1380
    assert meta["2024-01-02"]["first_bar"].value == "2024-01-02 00:00"
    assert meta["2024-01-02"]["last_bar"].value == "2024-01-02 22:59"
    assert meta["2024-01-03"]["rows"].value == 0 and meta["2024-01-03"]["first_bar"].value == "none"
    schema = meta["2024-01-01"]["dagster/column_schema"].value
    assert [(c.name, c.type) for c in schema.columns] == [("open_time", "timestamp"), ("close", "float"),
                                                         ("halt", "bool")]
    assert len(meta["2024-01-01"]["preview"].value.records) == 5


def test_a_withheld_run_says_its_partitions_have_no_visible_rows():
    meta = _run(withheld=True)
    assert meta["2024-01-01"]["rows"].value == 0 and meta["2024-01-01"]["rows_checked"].value == 1440


def test_figures_are_formatted_for_people():
    assert fmt(0.123456, percent=True) == "12.35%" and fmt(float("nan")) == "n/a" and fmt(12000.0) == "12,000"
    assert fmt(0.000123456) == "0.0001235" and fmt(1234.5678) == "1,234.57"
    t = frame_table(pd.DataFrame({"w": [0.5], "n": [3]}), percent=("w",)).value
    assert t.records[0].data == {"w": "50.00%", "n": "3"}
