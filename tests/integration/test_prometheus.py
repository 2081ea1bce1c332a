"""Prometheus for the mesh: deploy/prometheus.yml, alerts.yml and the Grafana dashboard.

promtool checks the config and runs the alert unit tests; a real Prometheus discovers two echo
workers through a real registry's HTTP service discovery and sees one leave after ``kill -9``;
every metric an alert or a panel names is checked against live /metrics pages (workers,
registry) or, for the COMPASS and sequence-model metrics, against their declarations in the
source. Skips with a reason when promtool or prometheus is not installed
(scripts/system_packages.sh installs the Debian package ``prometheus``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support import (
    REGISTRY_FLAGS,
    REPO,
    TOKEN,
    Proc,
    free_port,
    read_json_line,
    start_registry,
    start_workers,
    wait_for_http,
    wait_until,
)

DEPLOY = REPO / "deploy"
PROMETHEUS_YML = DEPLOY / "prometheus.yml"
ALERTS_YML = DEPLOY / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "mesh-dashboard.json"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NO_PROMTOOL = "promtool is not installed (Debian package 'prometheus', see scripts/system_packages.sh)"
NO_PROMETHEUS = "prometheus is not installed (Debian package 'prometheus', see scripts/system_packages.sh)"

# Metrics Prometheus makes itself for every target, not found on any /metrics page.
SCRAPE_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added"}
# Sources that declare metrics only a COMPASS or sequence-model worker exports.
KIND_METRIC_SOURCES = (REPO / "compass" / "service" / "serving.py", REPO / "seqmodels" / "metrics.py")
# Sample names a metric family of each type exports (prometheus_client, text format 0.0.4).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_WORDS = {"and", "or", "unless", "offset", "bool"}


# ---------------------------------------------------------------- what the files say


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_YML.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    panels = [p for p in dashboard()["panels"] if p["type"] != "row"]
    return [t["expr"] for p in panels for t in p["targets"]]


def concrete(expr: str) -> str:
    """A dashboard expression with Grafana's variables filled in, as Grafana would send it."""
    return expr.replace("$__rate_interval", "1m").replace("$service", ".*").replace("$instance", ".*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", text):
        if match.group(2) is None and match.group(1) not in PROMQL_WORDS:  # "name(" is a function
            names.add(match.group(1))
    return names


def exported_names(families: list[tuple[str, str]]) -> set[str]:
    return {name + suffix for name, kind in families for suffix in SUFFIXES.get(kind, ("",))}


def scraped_names(text: str) -> set[str]:
    """Every sample name a /metrics page can carry, declared families with no sample yet included."""
    return exported_names([(f.name, f.type) for f in text_string_to_metric_families(text)])


def declared_names(path: Path) -> set[str]:
    """Metric names declared in a Python file as Counter/Gauge/Histogram/Summary("name", ...)."""
    found = re.findall(r'\b(Counter|Gauge|Histogram|Summary)\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"', path.read_text())
    families = [(name.removesuffix("_total") if kind == "Counter" else name, kind.lower()) for kind, name in found]
    assert families, f"no metric declarations found in {path}"
    return exported_names(families)


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL or "promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


# ---------------------------------------------------------------- promtool


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_checks_the_config_and_its_rule_file() -> None:
    result = promtool("check", "config", "deploy/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alerts.yml" in result.stdout and "SUCCESS" in result.stdout


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", "deploy/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (DEPLOY / "alerts_test.yml").read_text()))
    assert tested == {rule["alert"] for rule in alert_rules()}, "every alert needs a promtool test"


def test_dashboard_is_a_grafana_dashboard_with_a_prometheus_variable() -> None:
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    rules = [{"record": f"dashboard:expr_{i}", "expr": concrete(e)} for i, e in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (service, le) (rate(worker_request_duration_seconds_bucket{route="/x"}'
        "[$__rate_interval]))) > 5 and on (service) up offset 10m"
    )
    assert metric_names(expr) == {"worker_request_duration_seconds_bucket", "up"}


# ---------------------------------------------------------------- a real mesh


@dataclass
class Mesh:
    registry: Proc
    workers: list[Proc]
    instance_ids: list[str]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """A real registry (fast heartbeats, 5 s removal) and two echo workers registered with it."""
    tmp = tmp_path_factory.mktemp("prometheus-mesh")
    registry = start_registry(tmp, *REGISTRY_FLAGS)
    workers: list[Proc] = []
    try:
        flags = ("--registry", registry.base_url, "--token", TOKEN, "--drain-timeout", "2")
        workers = start_workers(tmp, 2, *flags)
        ids = [read_json_line(w, "event")["instance_id"] for w in workers]
        wait_until(lambda: _passing(registry) >= set(ids), timeout=20, what="both echo workers passing")
        for worker in workers:  # some traffic, so the request counter and histogram have samples
            for i in range(3):
                requests.post(worker.base_url + "/predict", json={"task_type": "echo", "i": i}, timeout=5)
        yield Mesh(registry, workers, ids)
    finally:
        for proc in [*workers, registry]:
            proc.stop()


def _passing(registry: Proc) -> set[str]:
    resp = requests.get(registry.base_url + "/api/v1/services", params={"status": "passing"}, timeout=2)
    return {i["instance_id"] for i in resp.json()["data"]["instances"]}


def _instances(registry: Proc) -> dict[str, dict[str, Any]]:
    resp = requests.get(registry.base_url + "/api/v1/services", timeout=2)
    return {i["instance_id"]: i for i in resp.json()["data"]["instances"]}


def test_every_metric_in_alerts_and_dashboard_is_exported(mesh: Mesh) -> None:
    live = mesh.workers[0]
    worker_text = requests.get(live.base_url + "/metrics", timeout=5).text
    registry_text = requests.get(mesh.registry.base_url + "/metrics", timeout=5).text
    # The families the alerts lean on have samples on a live mesh (not only a declaration).
    for needed in ("worker_requests_total", "worker_request_duration_seconds_bucket", "worker_gpu_memory_used_bytes"):
        assert re.search(rf"^{needed}\{{|^{needed} ", worker_text, re.M), needed
    assert re.search(r'^registry_instances\{service="echo",status="passing"\} 2', registry_text, re.M)

    exported = scraped_names(worker_text) | scraped_names(registry_text) | SCRAPE_METRICS
    kind_only = set().union(*(declared_names(p) for p in KIND_METRIC_SOURCES))
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        used[f"alert {rule['alert']}"] = metric_names(rule["expr"])
    for i, expr in enumerate(dashboard_exprs()):
        used[f"dashboard expr {i}: {expr}"] = metric_names(expr)
    for where, names in used.items():
        assert names, f"{where} selects no metric"
        unknown = names - exported - kind_only
        assert not unknown, f"{where} uses metrics no process exports: {sorted(unknown)}"
    every = set().union(*used.values())
    # The dashboard covers the kinds' own metrics too, and those names really are declared.
    assert {"compass_batch_size_bucket", "seqmodel_batch_size_bucket"} <= every & kind_only
    assert {"registry_instances", "registry_heartbeats_total", "worker_inflight_requests", "worker_draining"} <= every


# ---------------------------------------------------------------- a real Prometheus


def prometheus_config(registry: Proc) -> dict[str, Any]:
    """deploy/prometheus.yml pointed at the test registry, scraping and refreshing every second."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(DEPLOY / name) for name in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"registry", "mesh-workers"}
    registry_hostport = registry.base_url.split("://", 1)[1]
    jobs["registry"]["static_configs"][0]["targets"] = [registry_hostport]
    (sd,) = jobs["mesh-workers"]["http_sd_configs"]
    sd.update(url=registry.base_url + "/prometheus/targets", refresh_interval="1s")
    return config


@pytest.fixture
def prometheus(mesh: Mesh, tmp_path: Path) -> Iterator[Proc]:
    if PROMETHEUS is None:
        pytest.skip(NO_PROMETHEUS)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(mesh.registry)))
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    args = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    proc = Proc(popen, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_for_http(proc, "/-/ready", timeout=30)
        yield proc
    finally:
        proc.stop()


def active_targets(prom: Proc) -> list[dict[str, Any]]:
    resp = requests.get(prom.base_url + "/api/v1/targets", params={"state": "active"}, timeout=2)
    resp.raise_for_status()
    return resp.json()["data"]["activeTargets"]


def query(prom: Proc, expr: str) -> list[dict[str, Any]]:
    resp = requests.get(prom.base_url + "/api/v1/query", params={"query": expr}, timeout=5)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


def test_prometheus_discovers_the_workers_through_the_registry(mesh: Mesh, prometheus: Proc) -> None:
    instances = _instances(mesh.registry)
    expected = {iid: instances[iid]["base_url"].rstrip("/") + "/metrics" for iid in mesh.instance_ids}

    def all_up() -> list[dict[str, Any]] | None:
        targets = active_targets(prometheus)
        workers = [t for t in targets if t["labels"]["job"] == "mesh-workers"]
        registry = [t for t in targets if t["labels"]["job"] == "registry"]
        ok = len(workers) == len(expected) and registry and all(t["health"] == "up" for t in workers + registry)
        return targets if ok else None

    targets = wait_until(all_up, timeout=60, interval=0.5, what="both workers and the registry up in Prometheus")
    workers = {t["labels"]["instance"]: t for t in targets if t["labels"]["job"] == "mesh-workers"}
    # Relabelling: instance is the registry's instance_id, the SD labels are kept, the URL is the base URL's.
    assert {iid: t["scrapeUrl"] for iid, t in workers.items()} == expected
    for iid, target in workers.items():
        assert target["labels"]["service"] == "echo" and target["labels"]["address"] in expected[iid]
        assert target["labels"]["version"] == instances[iid]["version"]
        assert target["labels"]["device"] == instances[iid]["metadata"]["device"]
        assert "instance_id" not in target["labels"]  # it is the instance label now
    (registry_target,) = [t for t in targets if t["labels"]["job"] == "registry"]
    assert registry_target["scrapeUrl"] == mesh.registry.base_url + "/metrics"

    # Every alert and panel expression evaluates on the real data (no PromQL or matching errors),
    # and the per-instance request rate names both workers by instance_id.
    wait_until(lambda: query(prometheus, "worker_info") and len(query(prometheus, "worker_info")) == 2, timeout=20)
    for rule in alert_rules():
        query(prometheus, rule["expr"])
    for expr in dashboard_exprs():
        query(prometheus, concrete(expr))
    assert {s["metric"]["instance"] for s in query(prometheus, 'worker_info{job="mesh-workers"}')} == set(expected)
    assert not query(prometheus, 'ALERTS{alertstate="firing"}')

    # kill -9 one worker: the registry stops listing it as passing, so it leaves discovery
    # (or, until the next refresh, is reported down).
    victim, victim_id = mesh.workers[-1], mesh.instance_ids[-1]
    victim.kill9()

    def gone_or_down() -> bool:
        hits = [t for t in active_targets(prometheus) if t["labels"].get("instance") == victim_id]
        return not hits or all(t["health"] == "down" for t in hits)

    wait_until(gone_or_down, timeout=30, interval=0.5, what=f"{victim_id} gone from Prometheus or down")
    survivor = mesh.instance_ids[0]
    live = [t for t in active_targets(prometheus) if t["labels"]["instance"] == survivor]
    assert live and live[0]["health"] == "up"
