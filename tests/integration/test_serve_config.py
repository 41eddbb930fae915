"""infra/serve/local-cpu.yaml works with Ray's own `serve run` on a Ray head of its own.

The head is started the way the README says for a 2-core machine (`ray start --head
--num-cpus 4`: logical CPUs, so the API, retriever and LLM replicas all fit). The
config is copied with a free port and a small fixed KV cache, so it can run beside
the session's server, and with two API replicas and an API key: the per-key rate
limit must hold across both replicas (services.rate_limit), not once per replica.
It also serves the session's fine-tuned LoRA adapter (tests/cluster.py: lora_adapter)
from its registry: LoRA is on because the registry holds one (adapters.serve unset).
"""

from __future__ import annotations

import csv
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.cluster import ROOT, Cluster, free_port

pytestmark = pytest.mark.integration
SERVE = str(Path(sys.executable).parent / "serve")
RAY = str(Path(sys.executable).parent / "ray")


def _stop_head(gcs_port: int) -> None:
    """Kill the processes of the head listening on ``gcs_port`` (and their children)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if f"127.0.0.1:{gcs_port}" in cmd or f"--gcs_server_port={gcs_port}" in cmd \
                or f"--port={gcs_port}" in cmd:
            for child in proc.children(recursive=True) + [proc]:
                try:
                    child.kill()
                except psutil.Error:
                    pass


RATE_PER_MINUTE, BURST = 60, 5  # 5 at once, then one a second (the probe polls every 3 s)


def _api_replicas(head: Cluster) -> int:
    """Running replicas of the API deployment, as `serve status` counts them."""
    return head.serve_replicas("llama-rag").get("LlamaRagApi", {}).get("RUNNING", 0)


def _rate_limit_holds_across_replicas(url: str, auth: dict) -> None:
    """20 quick requests on one key through the proxy, which spreads them over both
    replicas: buckets per replica would let about twice the burst through."""
    started = time.monotonic()
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        codes = [http.get("/v1/models").status_code for _ in range(20)]
    refilled = (time.monotonic() - started) * RATE_PER_MINUTE / 60
    assert set(codes) <= {200, 429}, codes
    assert BURST <= codes.count(200) <= BURST + int(refilled) + 1, (codes, refilled)


def _adapter_is_served(url: str, key: str, adapter) -> None:
    """The `openai` client, model "<base>:<NAME>": listed, answers, and answers otherwise
    than the base model on the prompt it was trained on (vLLM can load an adapter and
    ignore it); an unknown adapter is a 404 in our error shape, on /v1/ask too."""
    from openai import NotFoundError, OpenAI

    from llama_rag.prompts import PromptSpec, messages_for
    from pipelines.classify_labels import load_labels
    from tests.cluster import DEBIAN_LABELS

    client = OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=8)  # 429: waits Retry-After
    model = f"smollm2:{adapter.name}"
    assert model in [m.id for m in client.models.list().data]
    spec = PromptSpec(labels=load_labels(None, DEBIAN_LABELS), calibrate=False)
    with open(adapter.held_out, newline="") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)][:3]
    answers = {name: [client.chat.completions.create(
        model=name, messages=messages_for(spec, text), max_tokens=4,
        temperature=0).choices[0].message.content for text in texts]
        for name in ("smollm2", model)}
    assert answers[model] != answers["smollm2"], answers
    with pytest.raises(NotFoundError):
        client.chat.completions.create(model="smollm2:no-such-adapter", max_tokens=1,
                                       messages=[{"role": "user", "content": "hi"}])
    auth = {"authorization": f"Bearer {key}"}

    def ask(adapter_model: str | None) -> httpx.Response:
        for _ in range(10):  # this key's bucket: 5 at once, then one a second
            resp = httpx.post(f"{url}/v1/ask", headers=auth, timeout=300, json={
                "question": "How do I read a zip archive?", "max_tokens": 8,
                **({"model": adapter_model} if adapter_model else {})})
            if resp.status_code != 429:
                return resp
            time.sleep(float(resp.headers.get("retry-after", 1)))
        return resp

    asked = ask(model)
    assert asked.status_code == 200, asked.text[:300]
    assert asked.json()["citation_mode"] != "quoted"  # an adapter named: its model answers
    plain = ask(None)  # this config's defaults on the 135M model: auto -> extractive
    assert plain.status_code == 200 and plain.json()["citation_mode"] == "quoted", plain.text
    missing = ask("smollm2:nope")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"


def test_serve_run_with_the_local_cpu_config(tmp_path, lora_adapter, qa_index):
    config = yaml.safe_load((ROOT / "infra" / "serve" / "local-cpu.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    key, probe_key = "sc-" + secrets.token_hex(8), "sc-probe-" + secrets.token_hex(8)
    lora_key = "sc-lora-" + secrets.token_hex(8)
    config["applications"][0]["args"]["overrides"].update({
        # a fixed 1 GiB KV cache: a share of "node memory" is under the engine's own
        # footprint where /sys reports a small NUMA node (10 GiB here, 0.1 -> -0.2 GiB)
        "llm.cpu_kvcache_space_gb": 1, "serve.api_replicas": 2,
        "serve.api_keys": [key, probe_key, lora_key],
        "serve.rate_limit_per_minute": RATE_PER_MINUTE, "serve.rate_limit_burst": BURST,
        # the session's fine-tuned adapter, served from its registry (LoRA on)
        "adapters.dir": str(lora_adapter.registry), "index.dir": str(qa_index)})
    path = tmp_path / "local-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    gcs = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT),
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_worker_niceness="0")
    dashboard = free_port()
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
                    "--num-cpus=4", "--disable-usage-stats"], check=True, capture_output=True,
                   env=env, cwd=ROOT)
    env["RAY_ADDRESS"] = f"127.0.0.1:{gcs}"
    head = Cluster(address=env["RAY_ADDRESS"], dashboard=f"http://127.0.0.1:{dashboard}",
                   metrics="", token=env["RAY_AUTH_TOKEN"])
    log = open(tmp_path / "serve-run.log", "w")
    proc = subprocess.Popen([SERVE, "run", str(path)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    auth = {"authorization": f"Bearer {key}"}
    probe = {"authorization": f"Bearer {probe_key}"}  # polling and the chat: its own bucket
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, (tmp_path / "serve-run.log").read_text()[-3000:]
            assert time.time() < deadline, "serve run was not ready in 600 s"
            try:
                if httpx.get(f"{url}/readyz", headers=probe, timeout=10).status_code == 200 and \
                        _api_replicas(head) == 2:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(3)
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, headers=probe, json={
            "model": "smollm2", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hi."}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
        _rate_limit_holds_across_replicas(url, auth)
        _adapter_is_served(url, lora_key, lora_adapter)
    finally:
        # Ctrl-C, then the head goes: nothing here is about how `serve run` shuts down, and
        # its graceful stop of the app waited out a 120 s bound in CI's time
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # stops only this head: `ray stop` would also stop the session's
        status = subprocess.run([RAY, "status", f"--address={env['RAY_ADDRESS']}"],
                                capture_output=True, env=env)
        _stop_head(gcs)
        assert status.returncode in (0, 1)
