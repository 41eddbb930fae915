"""infra/serve/local-cpu.yaml works with Ray's own `serve run` (its own local Ray).

The config is copied with a free port and a smaller memory share, so it can run
beside the session's server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.conftest import ROOT, free_port

pytestmark = pytest.mark.integration
SERVE = str(Path(sys.executable).parent / "serve")


def test_serve_run_with_the_local_cpu_config(tmp_path):
    config = yaml.safe_load((ROOT / "infra" / "serve" / "local-cpu.yaml").read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config["applications"][0]["args"]["overrides"]["llm.gpu_memory_utilization"] = 0.1
    path = tmp_path / "local-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT))
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
