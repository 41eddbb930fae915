"""One local Ray head for the whole session (127.0.0.1 only), and the Serve app on it, shared by
the integration and reliability tests (registered in tests/conftest.py)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PY_DOCS = Path("/usr/share/doc/python3.11/html")
RAY = str(Path(sys.executable).parent / "ray")
ROOT = Path(__file__).resolve().parents[1]
API_KEY = "it-" + secrets.token_hex(8)  # the session server requires keys
LIMITED_KEY = "it-limited-" + secrets.token_hex(8)  # burned by the rate-limit test only
DOCS_KEY = "it-extra-" + secrets.token_hex(8)  # may use the "extra" collection only
LOAD_KEY = "it-load-" + secrets.token_hex(8)  # the load test's own rate-limit bucket
SWAP_KEY = "it-swap-" + secrets.token_hex(8)  # the publish-under-queries test's bucket
FUZZ_KEY = "it-fuzz-" + secrets.token_hex(8)  # schemathesis' bucket
TEAM_KEY = "it-team-" + secrets.token_hex(8)  # reads group "eng" and public documents only
GUIDE_GROUP = "beekeepers"  # the access group of the corpus's manuals/ folder
ISSUER, AUDIENCE = "https://idp.test.invalid", "llama-rag-tests"  # the session's token issuer
AUTH = {"authorization": f"Bearer {API_KEY}"}
# Python docs pages the QA index holds (the dev QA set's questions are about them)
QA_PAGES = ["zipfile", "tarfile", "gzip", "csv", "json", "glob", "tempfile", "shutil",
            "sqlite3", "datetime", "re", "pathlib", "zlib"]
EXTRA_PAGES = ["bz2", "lzma"]  # the "extra" collection beside the main index


OUTPUT = Path(os.environ.get("LLAMA_RAG_TEST_OUTPUT", ROOT / "test-output"))
MAX_TOKENS_LIMIT = 256  # the session server's ceiling: no request (fuzzed ones too) runs long
SLACK = 4.0  # a bound is this many times what was measured (the machine drifts mid-run)


class ServerURL(str):
    """The session server's URL, with how long `llama-rag serve` took to be ready."""

    startup_s: float = 0.0


@dataclass(frozen=True)
class Pace:
    """How fast the session's LLM answers on this machine now, measured once at session
    start: waits scale with the machine (a busy or slower host) instead of fixed seconds."""

    first_token_s: float  # one /v1/ask: retrieval and the prefill of its quoted chunks
    tokens_per_s: float  # decoding speed of one request
    startup_s: float  # `llama-rag serve` until every deployment was healthy

    def answer_s(self, tokens: int, one_after_another: int = 1) -> float:
        """A bound for ``one_after_another`` answers of ``tokens`` tokens each."""
        return 10 + SLACK * one_after_another * (self.first_token_s + tokens / self.tokens_per_s)

    def restart_s(self) -> float:
        """A bound for an LLM replica to be replaced (a model load and an engine start)."""
        return 60 + SLACK * self.startup_s


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    address: str
    dashboard: str
    metrics: str  # Ray's Prometheus endpoint (Serve's, Ray Data's and our metrics)
    token: str = secrets.token_hex(32)  # the session's own Ray auth token

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ, RAY_ADDRESS=self.address, PYTHONUNBUFFERED="1",
                   RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",  # loopback only: see tests/conftest.py
                   RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token,
                   RAY_worker_niceness="0")  # as llama_rag.ray_runtime starts Ray
        env.update(extra)
        return env

    def dashboard_get(self, path: str, params: list[tuple[str, str]] | None = None) -> Any:
        """GET the head's dashboard API (state, Serve, jobs). Tests that poll use this,
        not the `ray` / `serve` CLI: each CLI call spends about 2 s of CPU importing Ray,
        taken from the engines under test on a 2-core machine."""
        import httpx

        resp = httpx.get(f"{self.dashboard}{path}", params=params, timeout=60,
                         headers={"authorization": f"Bearer {self.token}"})
        resp.raise_for_status()
        return resp.json()

    def state(self, kind: str, **equal: str) -> list[dict]:
        """Rows of the state API (`ray list KIND --detail`), filtered on ``equal``."""
        params = [("limit", "10000"), ("detail", "true")]
        for key, value in equal.items():
            params += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
        return self.dashboard_get(f"/api/v0/{kind}", params)["data"]["result"]["result"]

    def serve_replicas(self, app: str) -> dict[str, dict[str, int]]:
        """Deployment -> replicas by state, as `serve status` counts them."""
        details = self.dashboard_get("/api/serve/applications/")
        deployments = ((details.get("applications") or {}).get(app) or {}).get("deployments") or {}
        return {name: dict(Counter(r["state"] for r in d.get("replicas") or []))
                for name, d in deployments.items()}


@pytest.fixture(scope="session")
def ray_cluster():
    if not PY_DOCS.exists():
        pytest.fail(f"{PY_DOCS} missing: run `make testdata` (Debian python3.11-doc)")
    port, dash, metrics = free_port(), free_port(), free_port()
    cluster = Cluster(address=f"127.0.0.1:{port}", dashboard=f"http://127.0.0.1:{dash}",
                      metrics=f"http://127.0.0.1:{metrics}/metrics")
    subprocess.run([RAY, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                    f"--metrics-export-port={metrics}",
                    "--num-cpus=4", "--disable-usage-stats"],
                   check=True, capture_output=True, text=True, env=cluster.env(RAY_ADDRESS=""))
    deadline = time.time() + 60
    while time.time() < deadline:
        if subprocess.run([RAY, "status", f"--address={cluster.address}"],
                          capture_output=True, env=cluster.env()).returncode == 0:
            break
        time.sleep(1)
    else:
        pytest.fail(f"the test Ray head at {cluster.address} did not come up")
    yield cluster
    subprocess.run([RAY, "stop", "--force"], capture_output=True, env=cluster.env())
    _kill_orphaned_engines()


def scrape_until(cluster: Cluster, names: list[str], timeout: float = 90) -> str:
    """Ray's Prometheus text once every metric in ``names`` is in it (Ray exports every
    few seconds); fails naming the missing ones."""
    import httpx

    deadline, text = time.time() + timeout, ""
    while time.time() < deadline:
        try:
            text = httpx.get(cluster.metrics, timeout=10).text
        except httpx.HTTPError:
            text = ""
        if all(name in text for name in names):
            return text
        time.sleep(3)
    missing = [n for n in names if n not in text]
    pytest.fail(f"not on {cluster.metrics} after {timeout} s: {', '.join(missing)}")


def _kill_orphaned_engines() -> None:
    """vLLM's EngineCore child outlives a replica killed by `ray stop --force`: reap it."""
    import psutil

    for proc in psutil.process_iter(["name", "cmdline", "ppid"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["ppid"] == 1 and cmd.startswith("VLLM::EngineCore"):
            proc.kill()


def llama_rag(cluster: Cluster, *args: str, timeout: float = 600, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI as a user would, joined to the session's cluster."""
    cmd = [str(Path(sys.executable).parent / "llama-rag"), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env=cluster.env(**(env or {})))
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {out.returncode}:\n{out.stdout}\n{out.stderr[-3000:]}")
    return out


def ask_events(url: str, body: dict, timeout: float = 300) -> list[tuple[str, dict]]:
    """A streamed /v1/ask as (event, data) pairs; asserts the SSE content type."""
    import json

    import httpx

    events, event = [], None
    with httpx.stream("POST", f"{url}/v1/ask", headers=AUTH, timeout=timeout,
                      json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    return events


def copy_pages(dst: Path, pages: list[str]) -> Path:
    (dst / "library").mkdir(parents=True, exist_ok=True)
    for page in pages:
        shutil.copy(PY_DOCS / "library" / f"{page}.html", dst / "library" / f"{page}.html")
    return dst


@pytest.fixture(scope="session")
def qa_index(ray_cluster, tmp_path_factory) -> Path:
    """A real index of QA_PAGES (about 2 minutes of embedding on 2 cores)."""
    from tests.helpers import field_guide_pdf

    root = tmp_path_factory.mktemp("qa")
    corpus = copy_pages(root / "corpus", QA_PAGES)
    (corpus / "manuals").mkdir()
    (corpus / "manuals" / "field-guide.pdf").write_bytes(field_guide_pdf())  # pages known
    (corpus / "manuals" / ".access").write_text(GUIDE_GROUP + "\n")  # the rest stays public
    llama_rag(ray_cluster, "index", str(corpus), "--index-dir", str(root / "index"),
              "--no-progress", timeout=900)
    extra = copy_pages(root / "extra", EXTRA_PAGES)
    llama_rag(ray_cluster, "index", str(extra), "--index-dir", str(root / "index"),
              "--collection", "extra", "--no-progress", timeout=900)
    return root / "index"


@pytest.fixture(scope="session")
def adapter_registry(tmp_path_factory) -> Path:
    """The session's adapter registry (adapters.dir): the fine-tuning test publishes to
    it; test_serve_config's app serves from it."""
    return tmp_path_factory.mktemp("adapters")


@dataclass(frozen=True)
class IdentityProvider:
    """The session's token issuer: an RSA key and its JWKS file, for minting test tokens."""

    key: object
    jwks: Path

    def token(self, groups: list[str], expires_in: int = 300, **claims) -> str:
        import jwt

        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "tester", "iat": now,
                           "exp": now + expires_in, "groups": groups, **claims},
                          self.key, algorithm="RS256", headers={"kid": "session"})


@pytest.fixture(scope="session")
def identity_provider(tmp_path_factory) -> IdentityProvider:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = tmp_path_factory.mktemp("idp") / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "session", "alg": "RS256"}]}))
    return IdentityProvider(key, path)


@pytest.fixture(scope="session")
def audit_log(tmp_path_factory) -> Path:
    """Where the session server writes its audit trail (access.audit_log)."""
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(scope="session")
def llm_server(ray_cluster, qa_index, identity_provider, audit_log):
    """`llama-rag serve --index-dir --documents-dir` on the session cluster: one vLLM
    replica of the bundled model, the retriever over ``qa_index``, its corpus served for
    citations' links, API keys required.

    Small API limits (4 running, 2 queued) so the overload test can reach them, and
    a rate limit of 600/min with bursts of 40 per key (schemathesis runs at 500/min).
    """
    port = free_port()
    env = ray_cluster.env(LLAMA_RAG_SERVE__MAX_RUNNING_REQUESTS="4",
                          LLAMA_RAG_SERVE__MAX_QUEUED_REQUESTS="2",
                          LLAMA_RAG_SERVE__RATE_LIMIT_PER_MINUTE="600",
                          LLAMA_RAG_SERVE__RATE_LIMIT_BURST="40",
                          LLAMA_RAG_API_KEYS=",".join([API_KEY, LIMITED_KEY, f"{DOCS_KEY}@extra",
                                                        LOAD_KEY, SWAP_KEY, FUZZ_KEY,
                                                        f"{TEAM_KEY}#eng"]),
                          LLAMA_RAG_ACCESS__JWT=json.dumps({
                              "jwks_file": str(identity_provider.jwks), "issuer": ISSUER,
                              "audience": AUDIENCE}),
                          LLAMA_RAG_ACCESS__AUDIT_LOG=str(audit_log),
                          LLAMA_RAG_LLM__MAX_MODEL_LEN="2048",
                          # the LLM writes answers here (the bundled model's default is
                          # extractive): streaming, load and replica-kill tests need the
                          # generating path; extractive answers are asked for per request
                          LLAMA_RAG_QA__ANSWER_MODE="generate",
                          # short answers unless a test asks for more: no test reads a long one
                          LLAMA_RAG_QA__MAX_TOKENS="64",
                          LLAMA_RAG_SERVE__DEFAULT_MAX_TOKENS="64",
                          LLAMA_RAG_SERVE__MAX_TOKENS_LIMIT=str(MAX_TOKENS_LIMIT))
    yield from serve_app(port, env, "--index-dir", str(qa_index),
                         "--documents-dir", str(qa_index.parent / "corpus"))


def serve_app(port: int, env: dict[str, str], *args: str):
    """`llama-rag serve --port PORT ARGS` as a user runs it: yields its URL once every
    deployment is healthy, then stops it with Ctrl-C and checks it exited cleanly."""
    import httpx

    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-rag-serve-{port}.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "llama-rag"), "serve",
                             "--port", str(port), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = ServerURL(f"http://127.0.0.1:{port}")
    started = time.time()
    deadline = started + 600
    while time.time() < deadline:  # the CLI prints its URL once every deployment is healthy
        if proc.poll() is not None:
            pytest.fail(f"llama-rag serve exited {proc.returncode}; see {log.name}")
        if f"serving smollm2 at {url}/v1" in Path(log.name).read_text(errors="replace"):
            assert httpx.get(f"{url}/v1/models", timeout=10, headers=AUTH).status_code == 200
            break
        time.sleep(2)
    else:
        proc.kill()
        pytest.fail(f"llama-rag serve was not ready in 600 s; see {log.name}")
    url.startup_s = time.time() - started
    yield url
    proc.send_signal(2)  # Ctrl-C: the command deletes the app and exits (SIGTERM alike)
    try:
        code = proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = None
    log.close()
    assert code == 0, f"llama-rag serve did not stop cleanly on SIGINT ({code}); see {log.name}"


@pytest.fixture(scope="session")
def pace(llm_server: ServerURL) -> Pace:
    """The session server's speed, best of two runs after a warm-up: the time to the first
    token of a real /v1/ask (retrieval plus the prefill of a prompt with quoted chunks, the
    slow part on a CPU), and decoding speed from 1- and 64-token chat answers
    (``ignore_eos``, so the counts are exact)."""
    import httpx

    def seconds(path: str, body: dict, tokens: int) -> float:
        started = time.perf_counter()
        resp = httpx.post(f"{llm_server}{path}", headers=AUTH, timeout=600,
                          json={**body, "max_tokens": tokens})
        assert resp.status_code == 200, resp.text[:300]
        return time.perf_counter() - started

    chat = {"model": "smollm2", "ignore_eos": True, "temperature": 0,
            "messages": [{"role": "user", "content": "Describe the zipfile module."}]}
    # three questions quoting different pages: the prefix cache may not answer for them
    questions = ["How do I read a zip archive?", "How do I parse a CSV file?",
                 "How do I create a temporary directory?"]
    seconds("/v1/ask", {"question": questions[0]}, 8)
    first = min(seconds("/v1/ask", {"question": q}, 1) for q in questions[1:])
    one, whole = (min(seconds("/v1/chat/completions", chat, n) for _ in range(2))
                  for n in (1, 64))
    measured = Pace(first_token_s=round(first, 3),
                    tokens_per_s=round(63 / max(whole - one, 1e-3), 1),
                    startup_s=round(llm_server.startup_s, 1))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "pace.json").write_text(json.dumps(measured.__dict__) + "\n")
    print(f"\nsession LLM pace: {measured}")
    return measured


ADAPTER = "it-sections"
DEBIAN_LABELS = Path(__file__).resolve().parents[1] / "examples" / "debian-sections.yaml"


@dataclass
class TrainedAdapter:
    """The session's LoRA adapter, trained by `ray job submit` with 2 workers, its
    driver killed with SIGKILL after the first checkpoint and the job submitted again."""

    registry: Path
    name: str
    version: str
    checkpoints: Path
    killed_log: str  # the first run's job log, up to the kill
    resumed_log: str  # the second run's `ray job submit` output
    held_out: Path  # Debian rows it was not trained on (csv: id, text, section)


def _job_logs(cluster: Cluster, job_id: str) -> str:
    return cluster.dashboard_get(f"/api/jobs/{job_id}/logs")["logs"]


def job_submit(cluster: Cluster, command: list[str], runtime_env: dict, *flags: str
               ) -> subprocess.CompletedProcess:
    """`ray job submit` of ``command`` from the repository (waiting for the job unless
    ``--no-wait`` is among ``flags``)."""
    deadline = time.time() + 120
    while True:  # a fresh head's job agent takes a few seconds to register
        out = subprocess.run(
            [RAY, "job", "submit", f"--address={cluster.dashboard}", "--working-dir",
             ".", "--runtime-env-json", json.dumps(runtime_env), *flags, "--", *command],
            cwd=ROOT, env=cluster.env(), capture_output=True, text=True, timeout=900)
        if "No available agent" not in out.stderr or time.time() > deadline:
            return out
        time.sleep(3)


def _registered_checkpoint(runs: Path) -> bool:
    """Whether the Ray Train controller of a run under ``runs`` has recorded a checkpoint
    in its snapshot, the file a resubmitted run resumes from."""
    from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

    for snapshot in runs.glob(f"*/{CHECKPOINT_MANAGER_SNAPSHOT_FILENAME}"):
        try:
            if json.loads(snapshot.read_text()).get("checkpoint_results"):
                return True
        except (OSError, ValueError):  # being rewritten
            continue
    return False


def kill_job_driver(module: str, out: Path) -> None:
    """SIGKILL the driver of the ``python -m MODULE ... --output OUT`` job (and the job's
    shell), as a crashed head or an OOM kill would: no cleanup of any kind."""
    import psutil

    drivers = [p for p in psutil.process_iter(["cmdline"])
               if module in " ".join(p.info["cmdline"] or [])
               and str(out) in " ".join(p.info["cmdline"] or [])]
    assert drivers, "the driver ended before it could be killed"
    for driver in drivers:
        driver.kill()
    psutil.wait_procs(drivers, timeout=30)
    assert not (out / "summary.json").exists(), "the job finished before its driver was killed"


def finetune_command(train: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.finetune", "--input", str(train), "--name", ADAPTER,
            "--text-column", "text", "--label-column", "section",
            "--labels-file", str(DEBIAN_LABELS), *extra]


@pytest.fixture(scope="session")
def lora_adapter(ray_cluster, adapter_registry, tmp_path_factory) -> TrainedAdapter:
    import psutil

    from llama_rag.adapters import AdapterStore

    root = tmp_path_factory.mktemp("finetune")
    data = root / "packages.csv"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "debian_packages.py"), str(data),
                    "--rows", "120"], check=True, capture_output=True)
    lines = data.read_text().splitlines()
    train, held_out = root / "train.csv", root / "held_out.csv"
    train.write_text("\n".join(lines[:61] + ["zz-empty,,games"]) + "\n")  # + one empty text
    held_out.write_text("\n".join(lines[:1] + lines[61:]) + "\n")
    checkpoints = root / "runs"
    runtime_env = {"env_vars": {"HF_HUB_OFFLINE": "1", "LLAMA_RAG_HOME": os.environ.get(
        "LLAMA_RAG_HOME", str(Path("~/.cache/llama-rag").expanduser())),
        "LLAMA_RAG_ADAPTERS__DIR": str(adapter_registry),
        "LLAMA_RAG_ADAPTERS__CHECKPOINTS": str(checkpoints)}}
    command = finetune_command(train, "--workers", "2", "--cpus-per-worker", "1",
                               "--batch-size", "2", "--max-steps", "10", "--checkpoint-every", "2",
                               "--learning-rate", "1e-3", "--eval-fraction", "0.2", "--json")

    def submit(*flags: str) -> subprocess.CompletedProcess:
        return job_submit(ray_cluster, command, runtime_env, *flags)

    first = submit("--no-wait")
    assert first.returncode == 0, first.stderr[-2000:]
    job_id = next(w.strip("'") for w in first.stdout.split() if w.strip("'").startswith("raysubmit_"))
    deadline, log = time.time() + 600, ""
    while "[finetune] checkpoint at step 2" not in log:
        assert time.time() < deadline, f"no checkpoint in 600 s:\n{log[-3000:]}"
        assert "Traceback" not in log, log[-3000:]
        time.sleep(3)
        log = _job_logs(ray_cluster, job_id)
    while not _registered_checkpoint(checkpoints):  # the worker logs it once uploaded; the
        assert time.time() < deadline, "no checkpoint registered in 600 s"  # controller
        time.sleep(0.5)  # registers it a moment later, and a run resumes only from those
    drivers = [p for p in psutil.process_iter(["cmdline"])
               if "pipelines.finetune" in " ".join(p.info["cmdline"] or [])
               and str(train) in " ".join(p.info["cmdline"] or [])]
    assert drivers, "the driver ended before it could be killed"
    for driver in drivers:
        driver.kill()  # SIGKILL: no cleanup of any kind
    psutil.wait_procs(drivers, timeout=30)
    killed_log = _job_logs(ray_cluster, job_id)
    time.sleep(5)  # the job's Train controller and workers go with their owner
    second = submit()
    resumed_log = second.stdout + second.stderr
    assert second.returncode == 0 and "succeeded" in resumed_log.lower(), resumed_log[-4000:]
    version = AdapterStore(adapter_registry, root / "cache").current(ADAPTER)
    assert version, resumed_log[-3000:]
    return TrainedAdapter(registry=adapter_registry, name=ADAPTER, version=version,
                          checkpoints=checkpoints, killed_log=killed_log, resumed_log=resumed_log,
                          held_out=held_out)


@pytest.fixture(scope="session")
def _figures():
    figures: dict[str, dict] = {}
    yield figures
    if figures:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / "reliability.json"
        previous = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**previous, **figures}, indent=2) + "\n")
        print(f"\nreliability figures: {path}")


@pytest.fixture
def record(_figures):
    """record(name, **figures): what a test measured, for docs/reliability.md
    (merged into test-output/reliability.json, or $LLAMA_RAG_TEST_OUTPUT)."""

    def _record(name: str, **figures) -> None:
        _figures[name] = figures
        print(f"{name}: {figures}")

    return _record
