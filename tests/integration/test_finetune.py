"""Fine-tuning as a real Ray job: Ray Train with 2 workers on the bundled model, the
driver killed with SIGKILL after the first checkpoint and the job resubmitted (it must
resume, not restart); the published adapter used by a classification job
(tests/cluster.py: lora_adapter). test_serve_config.py serves it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import DEBIAN_LABELS, finetune_command

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_bad_input_exits_2_before_ray(ray_cluster, tmp_path):
    bad = tmp_path / "train.csv"
    bad.write_text("text,section\nsome package,games\nother,unknown-section\n")
    started = time.perf_counter()
    out = subprocess.run(finetune_command(bad), cwd=ROOT, env=ray_cluster.env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "labels in the data missing from --labels: 'unknown-section'" in out.stderr
    assert "Traceback" not in out.stderr and time.perf_counter() - started < 60


def test_killed_driver_resumes_from_its_checkpoint_and_publishes(lora_adapter):
    from llama_rag.adapters import AdapterStore

    steps = [int(s) for s in re.findall(r"checkpoint at step (\d+)", lora_adapter.killed_log)]
    resumed = re.search(r"resuming from the checkpoint at step (\d+)", lora_adapter.resumed_log)
    assert resumed, lora_adapter.resumed_log[-3000:]
    # a checkpoint the killed run wrote, never step 0: its last one may be missing (the
    # worker logs a checkpoint once it is uploaded; the Train controller, killed with the
    # driver, may not have registered it yet: a run of 2026-12-01 logged 2 and 4, resumed at 2)
    assert int(resumed.group(1)) in steps and int(resumed.group(1)) >= 2
    log = lora_adapter.resumed_log
    assert re.search(r"step \d+/10 loss [\d.]+ [\d.]+ rows/s ETA", log)  # progress in the job log
    assert "2 worker(s)" in log
    summary = json.loads(log[log.index('{\n  "name"'):log.index("\n}", log.index('{\n  "name"')) + 2])
    assert summary["resumed_from_step"] == int(resumed.group(1)) and summary["steps"] == 10
    assert summary["error_rows"] == 1 and summary["eval_rows"] >= 6
    adapter = AdapterStore(lora_adapter.registry, lora_adapter.registry.parent / "c").open(
        lora_adapter.name)
    m = adapter.manifest
    assert m.version == summary["version"] and m.method == "lora" and m.lora_rank == 16
    assert m.hyperparameters["workers"] == 2 and m.base_model.name == "SmolLM2-135M-Instruct"
    assert 0 <= m.metrics["eval_accuracy"] <= 1 and set(m.metrics["per_label"]) <= set(m.labels)
    assert {"adapter_config.json", "adapter_model.safetensors", "loss_curve.png"} <= set(m.files)
    config = json.loads((adapter.path / "adapter_config.json").read_text())
    assert config["bias"] == "none" and not config.get("modules_to_save") and not config["use_dora"]
    errors = [json.loads(ln) for ln in (adapter.path / "errors.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in errors] == ["empty text"]
    assert not list(lora_adapter.checkpoints.glob(f"{lora_adapter.name}-*"))  # run cleaned up


def test_classify_job_labels_with_the_adapter(ray_cluster, lora_adapter, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.classify", "--input", str(lora_adapter.held_out),
         "--text-column", "text", "--id-column", "id", "--gold-column", "section",
         "--adapter", lora_adapter.name, "--output", str(out), "--max-rows", "24"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env=ray_cluster.env(LLAMA_RAG_ADAPTERS__DIR=str(lora_adapter.registry)))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adapter"] == {"name": lora_adapter.name, "version": lora_adapter.version,
                                  "method": "lora"}
    assert summary["complete"] and summary["labeled"] == 24
    labels = [ln.split(":")[0].strip() for ln in DEBIAN_LABELS.read_text().splitlines()
              if ln and not ln.startswith("#")]
    assert set(summary["label_distribution"]) <= set(labels)


def test_adapter_gate_keeps_current_when_a_new_version_scores_lower(lora_adapter, tmp_path):
    """Embedding heads (seconds each) on the Debian rows: the first publishes through the
    gate; one held to an accuracy it cannot reach exits 5 and CURRENT stays."""
    from llama_rag.adapters import AdapterStore

    env = {**__import__("os").environ, "LLAMA_RAG_ADAPTERS__DIR": str(tmp_path / "reg")}
    base = finetune_command(lora_adapter.held_out, "--method", "embedding-head",
                            "--eval-fraction", "0.3", "--json")
    first = subprocess.run(base + ["--gate"], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    version = json.loads(first.stdout)["version"]
    accuracy = json.loads(first.stdout)["eval_accuracy"]
    assert accuracy < 1.0
    refused = subprocess.run(base + ["--min-eval-accuracy", "1.0"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 5, refused.stdout + refused.stderr[-2000:]
    assert f"eval accuracy {accuracy} is under --min-eval-accuracy 1.0" in refused.stderr
    assert f"CURRENT stays {version}" in refused.stderr and "Traceback" not in refused.stderr
    store = AdapterStore(tmp_path / "reg", tmp_path / "cache")
    assert store.current(lora_adapter.name) == version and store.versions(lora_adapter.name) == [
        version]
