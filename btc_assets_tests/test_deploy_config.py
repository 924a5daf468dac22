"""The production instance file and the run-launcher examples pass Dagster's own config validation."""

from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

REPO = Path(__file__).resolve().parents[1]
ENV = {"DAGSTER_PG_URL": "postgresql+psycopg2://u:p@127.0.0.1:5432/dagster", "BTC_S3_BUCKET": "b",
       "BTC_IMAGE": "registry.example/btc-assets:1"}


@pytest.fixture(autouse=True)
def env(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def launcher(name: str) -> dict:
    return yaml.safe_load((REPO / "deploy" / "run_launchers" / f"{name}.yaml").read_text())["run_launcher"]


@pytest.mark.parametrize("name", ["ecs", "k8s"])
def test_run_launcher_config_is_valid(name):
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_k8s import K8sRunLauncher

    block = launcher(name)
    cls = {"ecs": EcsRunLauncher, "k8s": K8sRunLauncher}[name]
    assert f"{block['module']}.{block['class']}" in (f"{cls.__module__.rsplit('.', 1)[0]}.{cls.__name__}",
                                                     f"{cls.__module__}.{cls.__name__}", f"dagster_k8s.{cls.__name__}")
    result = process_config(cls.config_type(), block["config"])
    assert result.success, result.errors


def test_a_broken_launcher_config_is_rejected():
    from dagster_aws.ecs import EcsRunLauncher

    bad = {**launcher("ecs")["config"], "run_resources": {"cpu": 1024}}
    assert not process_config(EcsRunLauncher.config_type(), bad).success


@pytest.mark.parametrize("launcher_name", [None, "ecs", "k8s"])
def test_prod_instance_file_with_each_launcher_is_valid(tmp_path, launcher_name):
    cfg = yaml.safe_load((REPO / "deploy" / "dagster.prod.yaml").read_text())
    if launcher_name:
        cfg["run_launcher"] = launcher(launcher_name)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(cfg))
    config, _ = dagster_instance_config(str(tmp_path))  # raises on any schema error
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_PG_URL"}  # resolved at start, not stored
    assert config["compute_logs"]["class"] == "S3ComputeLogManager"
    if launcher_name:
        assert config["run_launcher"]["class"] in ("EcsRunLauncher", "K8sRunLauncher")


def test_training_runs_ask_for_bigger_machines():
    import json

    from dagster_k8s.job import get_user_defined_k8s_config

    from btc_assets.defs.automation import daily_archive_job, weekly_model_job

    big, small = weekly_model_job.tags, daily_archive_job.tags
    assert int(big["ecs/memory"]) > int(small["ecs/memory"]) and int(big["ecs/cpu"]) > int(small["ecs/cpu"])
    k8s = get_user_defined_k8s_config(big)
    assert k8s.container_config["resources"]["requests"]["memory"] == "8Gi"
    assert json.loads(big["dagster-k8s/config"])["container_config"]["resources"]["limits"]["cpu"] == "4"
