"""Runs executed in this process (`make demo`, the replay and the trading worker), filed under the code location the
UI serves.

A run the UI launches carries its code location's origin; one made by `execute_in_process` has none, and the
Overview timeline leaves every such run out ("No runs" after a demo of twenty). `execute` runs the job as before,
then records the origin of the location `workspace.yaml` declares (the same definitions module this process
loaded), so the timeline, the job pages and the Runs list show it like any other run.
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKSPACE = REPO / "workspace.yaml"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a Definitions object


@cache
def _location() -> tuple[str, str, str]:
    """(location name, module, working directory) of workspace.yaml's python_module entry."""
    entry = yaml.safe_load(WORKSPACE.read_text())["load_from"][0]["python_module"]
    module = entry["module_name"] if isinstance(entry, dict) else entry
    name = (entry.get("location_name") if isinstance(entry, dict) else None) or module
    workdir = str((REPO / entry.get("working_directory", ".")).resolve()) if isinstance(entry, dict) else str(REPO)
    return name, module, workdir


def job_origin(job_name: str):
    """The origin a run of `job_name` launched from the UI would have."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    name, module, workdir = _location()
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=module, working_directory=workdir)
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=name)
    return RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(location, REPOSITORY), job_name=job_name)


def file_under_location(instance: dg.DagsterInstance, run_id: str) -> None:
    """Give an in-process run its code location's origin (and the repository tag the UI filters on)."""
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG

    run = instance.get_run_by_id(run_id)
    if run is not None and run.remote_job_origin is None:
        origin = job_origin(run.job_name)
        # the tag row first: replace_job_origin only relabels one that exists, and an in-process run has none
        instance.add_run_tags(run_id, {REPOSITORY_LABEL_TAG: origin.repository_origin.get_label()})
        instance.run_storage.replace_job_origin(instance.get_run_by_id(run_id), origin)


def execute(job, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    """job.execute_in_process(instance=instance, **kwargs), the run then filed under the code location (also when
    it failed or raised)."""
    from dagster._core.utils import make_new_run_id

    if kwargs.get("run_id") is None:
        kwargs["run_id"] = make_new_run_id()
    run_id = kwargs["run_id"]
    try:
        return job.execute_in_process(instance=instance, **kwargs)
    finally:
        file_under_location(instance, run_id)
