"""deploy/monitoring/: alert rules and scrape config checked by Prometheus's own promtool,
the alerts unit-tested against synthetic series, the dashboard's queries parsed by promtool,
and every metric they name is one the server really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import generate_latest

from server.worker_metrics import WorkerMetrics
from tests.server.running import RunningServer, make_settings
from tests.service_procs import _missing

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        _missing("promtool", "prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_checks_the_scrape_config() -> None:
    result = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_past_their_thresholds_and_not_below() -> None:
    # tests/deploy/alerts_test.yml: series above and below each seed threshold.
    result = promtool("test", "rules", "alerts_test.yml", cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses expressions only in rule files: each query becomes a recording rule.
    exprs = _dashboard_exprs()
    rules = [{"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_the_seed_plans_metrics() -> None:
    titles = " | ".join(p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]).lower()
    for wanted in ("p95", "pool", "redis", "disk", "offline", "error", "websocket"):
        assert wanted in titles, wanted


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Any) -> Iterator[set[str]]:
    """Every metric name a real server on PostGIS and the worker export (after one request)."""
    database = pg_cluster.create_database()
    server = RunningServer(
        make_settings(tmp_path_factory.mktemp("data"), pg_cluster.url(database))
    ).start()
    try:
        httpx.get(f"{server.url}/health")
        text = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
        pg_cluster.drop_database(database)
    # The worker serves its own /metrics (D61): its names count as exported too.
    text += generate_latest(WorkerMetrics().registry).decode()
    names = set()
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            names.add(m.group(1))
            if m.group(2) == "histogram":
                names |= {m.group(1) + s for s in ("_bucket", "_count", "_sum")}
            if m.group(2) == "counter":
                names.add(m.group(1) + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    yield names


def test_alerts_and_dashboard_name_only_metrics_that_exist(exported: set[str]) -> None:
    text = " ".join([r["expr"] for r in _rules()] + _dashboard_exprs())
    used = set(re.findall(r"\bbustracker_[a-z_]+", text))
    assert "bustracker_http_request_duration_seconds_bucket" in exported
    assert "bustracker_db_pool_idle" in exported
    assert used - exported == set()


def _anchors() -> set[str]:
    text = (ROOT / "docs" / "operations.md").read_text()
    headings = re.findall(r"^#+ (.+)$", text, re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_entry() -> None:
    anchors = _anchors()
    for rule in _rules():
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/operations.md#"), rule["alert"]
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook}"
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
