"""An in-process run (the demo's, the replay's, the trading worker's) is filed under the code location the UI
serves: without that origin the Overview timeline leaves it out."""

from __future__ import annotations

import dagster as dg
import pytest

from btc_assets.cli import in_process
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG


@dg.asset
def one() -> int:
    return 1


@dg.asset
def broken() -> int:
    raise RuntimeError("planted")


@pytest.fixture()
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_a_run_gets_the_workspace_location_and_the_repository_tag(instance):
    job = dg.Definitions(assets=[one]).resolve_implicit_global_asset_job_def()
    res = in_process.execute(job, instance)
    run = instance.get_run_by_id(res.run_id)
    origin = run.remote_job_origin
    assert origin is not None and origin.job_name == run.job_name
    assert origin.repository_origin.code_location_origin.location_name == "btc_assets.definitions"
    assert origin.repository_origin.repository_name == "__repository__"
    assert run.tags[REPOSITORY_LABEL_TAG] == "__repository__@btc_assets.definitions"
    # the tag the UI filters on is in the tags table too, not only in the run body
    assert [r.run_id for r in instance.get_runs(dg.RunsFilter(tags={REPOSITORY_LABEL_TAG: run.tags[
        REPOSITORY_LABEL_TAG]}))] == [run.run_id]


def test_a_failed_run_is_filed_too_and_the_error_still_raises(instance):
    job = dg.Definitions(assets=[broken]).resolve_implicit_global_asset_job_def()
    with pytest.raises(RuntimeError, match="planted"):
        in_process.execute(job, instance, run_id="0b1c2d3e-0000-4000-8000-000000000001")
    run = instance.get_run_by_id("0b1c2d3e-0000-4000-8000-000000000001")
    assert run.status == dg.DagsterRunStatus.FAILURE and run.remote_job_origin is not None


def test_the_location_is_the_one_workspace_yaml_declares():
    name, module, _ = in_process._location()
    assert name == module == "btc_assets.definitions"
