"""Fine-tuning as a real Ray job: Ray Train with 2 workers on the bundled model, the
driver killed with SIGKILL after the first checkpoint and the job resubmitted (it must
resume, not restart); the published adapter used by a classification job as an
ensemble with an embedding head (tests/cluster.py: lora_adapter); `--method auto` and
the gate. test_serve_config.py serves the adapter."""

from __future__ import annotations

import json
import os
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


def test_classify_job_labels_with_an_ensemble_of_the_adapter_and_a_head(ray_cluster, lora_adapter,
                                                                        tmp_path):
    """The session's LoRA adapter published with an embedding head beside it, as
    `finetune --method auto` publishes an ensemble: the job runs the head stage before the
    LLM stage and blends them. The head is fit on the very rows classified and given most
    of the weight, so a job that dropped it would label them as the 10-step adapter does."""
    import csv
    import shutil

    import numpy as np

    from indexing.embedder import job_embedder, resolve_embedder
    from llama_rag.adapters import AdapterStore
    from llama_rag.config import load_settings
    from pipelines.embedding_head import fit, save_head

    lora = AdapterStore(lora_adapter.registry, tmp_path / "c").open(lora_adapter.name)
    labels = lora.manifest.labels
    rows = [r for r in csv.DictReader(lora_adapter.held_out.open())][:24]
    settings = load_settings()
    x = job_embedder(resolve_embedder(settings), settings).encode([r["text"] for r in rows])
    weight, bias, _ = fit(x, np.array([labels.index(r["section"]) for r in rows]), len(labels),
                          c=100.0)
    files = tmp_path / "files"
    files.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(lora.path / name, files / name)
    save_head(files, weight, bias)
    registry = tmp_path / "registry"
    AdapterStore(registry, tmp_path / "c2").publish(files, lora.manifest.model_copy(update={
        "name": "ensemble", "version": "", "files": [], "head_weight": 0.9}))
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "pipelines.classify", "--input", str(lora_adapter.held_out),
         "--text-column", "text", "--id-column", "id", "--gold-column", "section",
         "--adapter", "ensemble", "--output", str(out), "--max-rows", "24"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
        env=ray_cluster.env(LLAMA_RAG_ADAPTERS__DIR=str(registry)))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "adapter ensemble (lora with an embedding head, weight 0.9)" in run.stdout + run.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["adapter"]["method"] == "lora" and summary["adapter"]["name"] == "ensemble"
    assert summary["complete"] and summary["labeled"] == 24
    assert set(summary["label_distribution"]) <= set(labels)
    assert summary["metrics"]["accuracy"] >= 0.9, summary["metrics"]


def test_adapter_gate_keeps_current_when_a_new_version_scores_lower(lora_adapter, tmp_path):
    """Embedding heads (seconds each) on the Debian rows: the first (by `--method auto`)
    publishes through the gate; one held to an accuracy it cannot reach exits 5 and
    CURRENT stays."""
    from llama_rag.adapters import AdapterStore

    env = {**os.environ, "LLAMA_RAG_ADAPTERS__DIR": str(tmp_path / "reg")}
    base = finetune_command(lora_adapter.held_out, "--method", "embedding-head",
                            "--eval-fraction", "0.3", "--json")
    # the first by `--method auto`: the head only, LoRA being over the budget
    first = subprocess.run(base + ["--gate", "--method", "auto", "--budget-minutes", "0"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    published = json.loads(first.stdout)
    version, accuracy = published["version"], published["eval_accuracy"]
    assert published["method"] == published["chosen"] == "embedding-head"
    assert [c["method"] for c in published["candidates"]] == ["embedding-head", "lora", "ensemble"]
    assert "over --budget-minutes 0" in published["candidates"][1]["skipped"]
    assert published["candidates"][0]["params"]["C"] in (0.25, 1.0, 4.0, 16.0)
    assert 0 < accuracy < 1.0
    refused = subprocess.run(base + ["--min-eval-accuracy", "1.0"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 5, refused.stdout + refused.stderr[-2000:]
    assert re.search(r"eval accuracy [\d.]+ is under --min-eval-accuracy 1.0", refused.stderr)
    assert f"CURRENT stays {version}" in refused.stderr and "Traceback" not in refused.stderr
    store = AdapterStore(tmp_path / "reg", tmp_path / "cache")
    assert store.current(lora_adapter.name) == version and store.versions(lora_adapter.name) == [
        version]


def test_multi_label_classify_train_through_ray_job_submit_killed_and_resubmitted(ray_cluster,
                                                                                  tmp_path):
    """`classify --train --multi-label` as a Ray job on Debian programs' debtags, two
    labelling actors: the job's auto trains the one-vs-rest head (the LLM's yes/no is over
    `--budget-minutes 0`: its scoring is bench/multilabel.py's, its logic
    tests/unit/test_multilabel_llm.py's) and starts labelling; its driver is killed
    (SIGKILL) after the first parts; the same command again reuses the published adapter,
    labels only the rest, every input id exactly once, scored against the gold tags."""
    import csv

    from tests.cluster import job_submit, kill_job_driver
    from tests.integration.test_classify import input_ids, output_ids

    rows = tmp_path / "tags.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "debian_packages.py"), str(rows),
                    "--tags", "--rows", "900"], check=True, capture_output=True)
    lines = rows.read_text().splitlines()
    train, data = tmp_path / "train.csv", tmp_path / "input.csv"
    train.write_text("\n".join(lines[:151]) + "\n")  # 30 held out
    data.write_text("\n".join(lines[:1] + lines[401:]) + "\n")
    tags = sorted({t for r in csv.DictReader(data.open()) for t in r["tags"].split(";")}
                  | {t for r in csv.DictReader(train.open()) for t in r["tags"].split(";")})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "pipelines.classify", "--input", str(data), "--text-column",
               "text", "--id-column", "id", "--gold-column", "tags", "--train", str(train),
               "--labels", ",".join(tags), "--multi-label", "--output", str(out),
               "--batch-size", "4", "--concurrency", "2", "--budget-minutes", "0"]
    home = os.environ.get("LLAMA_RAG_HOME", str(Path("~/.cache/llama-rag").expanduser()))
    env = {"env_vars": {"HF_HUB_OFFLINE": "1", "LLAMA_RAG_ADAPTERS__DIR": str(tmp_path / "reg"),
                        "LLAMA_RAG_HOME": home}}
    first = job_submit(ray_cluster, command, env, "--no-wait")
    assert first.returncode == 0, first.stderr[-2000:]
    deadline = time.time() + 600
    while len(list((out / "parts").glob("part-*"))) < 2:
        assert time.time() < deadline, "no parts written in 600 s"
        assert not (out / "summary.json").exists(), "the job ended before its driver was killed"
        time.sleep(0.2)
    kill_job_driver("pipelines.classify", out)
    time.sleep(3)
    again = job_submit(ray_cluster, command, env)
    log = again.stdout + again.stderr
    assert again.returncode == 0 and "succeeded" in log.lower(), log[-3000:]
    assert "by an earlier run" in log and "multi-label)" in log  # the head the killed run published
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["input"] == 500 == summary["labeled"]
    assert 0 < summary["skipped_already_done"] < 500
    manifest = json.loads(next((tmp_path / "reg").glob("*/versions/*/manifest.json")).read_text())
    assert summary["adapter"]["method"] == manifest["metrics"]["chosen"] and summary["trained"] is None
    llm = [c for c in manifest["metrics"]["candidates"] if c["method"] == "llm-yes-no"]
    assert llm and "over --budget-minutes 0" in llm[0]["skipped"], manifest["metrics"]["candidates"]
    assert summary["multi_label_metrics"]["micro_f1"] > 0.4
    assert set(summary["label_distribution"]) <= set(tags)
    assert sorted(output_ids(out)) == sorted(input_ids(data))  # every id exactly once

