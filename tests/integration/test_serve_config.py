"""infra/serve/local-cpu.yaml works with Ray's own `serve run` on a Ray head of its own.

The head is started the way the README says for a 2-core machine (`ray start --head
--num-cpus 4`: logical CPUs, so the API, retriever and LLM replicas all fit). The
config is copied with a free port and a smaller memory share, so it can run beside
the session's server.
"""

from __future__ import annotations

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

from tests.cluster import ROOT, free_port

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


def test_serve_run_with_the_local_cpu_config(tmp_path):
    config = yaml.safe_load((ROOT / "infra" / "serve" / "local-cpu.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config["applications"][0]["args"]["overrides"]["llm.gpu_memory_utilization"] = 0.1
    path = tmp_path / "local-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    gcs = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT),
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32),
               RAY_worker_niceness="0")
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={gcs}",
                    f"--dashboard-port={free_port()}", "--dashboard-host=127.0.0.1",
                    "--num-cpus=4", "--disable-usage-stats"], check=True, capture_output=True,
                   env=env, cwd=ROOT)
    env["RAY_ADDRESS"] = f"127.0.0.1:{gcs}"
    log = open(tmp_path / "serve-run.log", "w")
    proc = subprocess.Popen([SERVE, "run", str(path)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            assert proc.poll() is None, (tmp_path / "serve-run.log").read_text()[-3000:]
            assert time.time() < deadline, "serve run was not ready in 600 s"
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(3)
        reply = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "smollm2", "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hi."}]})
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"]
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: serve run shuts the app and its Ray down
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        # stops only this head: `ray stop` would also stop the session's
        head = subprocess.run([RAY, "status", f"--address={env['RAY_ADDRESS']}"],
                              capture_output=True, env=env)
        _stop_head(gcs)
        assert head.returncode in (0, 1)
