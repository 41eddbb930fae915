"""Alert rules are well-formed and only use metrics Ray Serve really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra/monitoring/alerts.yaml"


def _serve_metric_names() -> set[str]:
    """Metric names in Ray Serve's source and in llama_rag/telemetry.py, as Prometheus
    shows them (ray_ prefix)."""
    import ray.serve

    names = set()
    sources = [*Path(ray.serve.__file__).parent.rglob("*.py"), ROOT / "llama_rag/telemetry.py"]
    for path in sources:
        for name in re.findall(r'"((?:serve|llama_rag)_[a-z_{}]+)"', path.read_text(errors="replace")):
            names.add("ray_" + name.replace("{protocol_name}", "http"))
    return names


def test_every_rule_is_complete_and_uses_real_serve_metrics():
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert {"LlamaRagHighErrorRate", "LlamaRagHighLatencyP95", "LlamaRagQueueBuildingUp",
            "LlamaRagReplicaRestarts"} <= {r["alert"] for r in rules}
    known = _serve_metric_names()
    for rule in rules:
        assert rule["expr"] and rule["annotations"]["summary"] and rule["labels"]["severity"]
        for metric in re.findall(r"\b(ray_serve_[a-z_]+?)(?:_total|_bucket)?\{", rule["expr"]):
            assert metric in known, f"{rule['alert']}: {metric} is not a Ray Serve metric"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules():
    out = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_grafana_dashboard_queries_real_serve_metrics():
    import json

    dash = json.loads((ROOT / "infra/monitoring/grafana-dashboard.json").read_text())
    known = _serve_metric_names()
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert any("ray_llama_rag_retrieval_latency_ms_bucket" in e for e in exprs)
    assert len(dash["panels"]) >= 6 and len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for expr in exprs:
        for metric in re.findall(r"\b(ray_(?:serve|llama_rag)_[a-z_]+?)(?:_total|_bucket)?[{\[]", expr):
            assert metric in known, f"{metric} is not a Ray Serve or llama-rag metric"
