"""A Ray cluster of three nodes on this machine: a head and two workers joined with
`ray start --address`, as on separate machines.

Each node has its own loopback address (Ray rewrites 127.0.0.1 to the machine's network
address as soon as more than one node may join, so 127.0.0.2-4 keep every node off the
network and give each its own IP, as on a real cluster), its own temp and spill folders,
its own object store and its own HOME (so `~/.cache/llama-rag/index-cache` is that node's
cache of a `file://` index root). The head runs no work (0 CPUs), as on a production
cluster: Serve's controller and proxy and the job drivers live there. Workers offer
8 logical CPUs and `llm: 2`, the custom resource LLM replicas and classification
actors reserve (llm.resources), plus `worker-a` / `worker-b` to pin work to one node.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.cluster import RAY, Cluster, free_port

HEAD_IP = "127.0.0.2"
WORKERS = {"worker-a": "127.0.0.3", "worker-b": "127.0.0.4"}
LLM_SLOTS = 2  # LLM replicas / vLLM actors one worker node holds
# logical CPUs (a scheduling quota, not cores): two LLM replicas (2 each: engine + replica
# actor), both API replicas and the retriever must fit on one worker after the other is lost
WORKER_CPUS = 8
OBJECT_STORE_BYTES = 1_000_000_000
MODELS_HOME = Path(os.environ.get("LLAMA_RAG_HOME", "~/.cache/llama-rag")).expanduser()


@dataclass
class Node:
    name: str
    ip: str
    args: list[str]
    root: Path  # temp/, spill/ and home/ of this node

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def index_cache(self) -> Path:
        """The default index.cache_dir as this node's processes expand it."""
        return self.home / ".cache" / "llama-rag" / "index-cache"


@dataclass
class MultiNodeCluster(Cluster):
    root: Path = Path("/tmp")
    nodes: dict[str, Node] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        # multi-node needs Ray's cluster mode on; prepared models are shared (an image's)
        return super().env(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="1",
                           LLAMA_RAG_HOME=str(MODELS_HOME), **extra)

    def start(self, name: str) -> None:
        """`ray start` this node (again, after a kill: a replacement node)."""
        node = self.nodes[name]
        for sub in ("temp", "spill", "home"):
            (node.root / sub).mkdir(parents=True, exist_ok=True)
        env = self.env(HOME=str(node.home)) if name != "head" else self.env(RAY_ADDRESS="")
        out = subprocess.run([RAY, "start", *node.args], capture_output=True, text=True,
                             env=env, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"ray start {name} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        self.wait_alive(name)

    def node_ids(self) -> dict[str, str]:
        """Alive nodes: our name -> Ray node id (by the node's address)."""
        by_ip = {ip: name for name, ip in WORKERS.items()} | {HEAD_IP: "head"}
        nodes = self.state("nodes", state="ALIVE")
        return {by_ip[n["node_ip"]]: n["node_id"] for n in nodes if n["node_ip"] in by_ip}

    def wait_alive(self, name: str, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while name not in self.node_ids():
            if time.time() > deadline:
                raise RuntimeError(f"node {name} did not join in {timeout} s")
            time.sleep(1)

    def actors(self, contains: str, state: str = "ALIVE") -> list[dict]:
        """Actors whose class (or Ray Data's repr) names ``contains``, with our node names."""
        names = {v: k for k, v in self.node_ids().items()}
        rows = self.state("actors", **({"state": state} if state else {}))
        found = []
        for row in rows:
            label = f"{row.get('class_name') or ''} {row.get('repr_name') or ''} {row.get('name') or ''}"
            if contains in label:
                found.append({**row, "node": names.get(row.get("node_id"), row.get("node_id"))})
        return found

    def raylet(self, name: str) -> psutil.Process:
        """The node's raylet, found by its own temp folder in its command line."""
        marker = f"{self.nodes[name].root / 'temp'}/"
        for proc in psutil.process_iter(["cmdline"]):
            cmd = proc.info["cmdline"] or []
            if cmd and cmd[0].endswith("/raylet") and any(marker in a for a in cmd):
                return proc
        raise LookupError(f"no raylet for node {name}")

    def processes(self, title: str) -> dict[str, list[psutil.Process]]:
        """Our node name -> the live Ray workers whose process title starts with ``title``
        (a worker is its raylet's child: read locally, faster than the state API)."""
        raylets = {}
        for name in self.nodes:
            try:
                raylets[self.raylet(name).pid] = name
            except LookupError:
                pass
        found: dict[str, list[psutil.Process]] = {}
        for proc in psutil.process_iter(["cmdline", "ppid"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith(title) and proc.info["ppid"] in raylets:
                found.setdefault(raylets[proc.info["ppid"]], []).append(proc)
        return found

    def serve_log_errors(self, limit: int = 30) -> list[str]:
        """The Serve log lines of every node that say why requests failed (errors, uncaught
        exceptions, failed calls, replica health and deaths), oldest first: what a failed
        traffic test prints, since the nodes' folders go with the cluster."""
        wanted = re.compile(r"^(ERROR|WARNING) |Uncaught|health check|died|unhealthy")
        lines = []
        for log in self.root.glob("*/temp/session_latest/logs/serve/*.log"):
            node = log.parts[len(self.root.parts)]
            lines += [f"{node}: {line.rstrip()[:400]}" for line in
                      log.read_text(errors="replace").splitlines()
                      if wanted.search(line) and "to initialize" not in line]  # slow starts: noise
        return sorted(lines, key=lambda line: line.split(" ", 4)[2:4])[-limit:]  # by time

    def kill(self, name: str) -> float:
        """Lose a node as a machine is lost: SIGKILL its raylet and every process it started
        (workers, vLLM engines, agents), by pid, at once. Returns when it happened."""
        raylet = self.raylet(name)
        victims = [raylet, *raylet.children(recursive=True)]
        for proc in victims:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        killed_at = time.perf_counter()
        psutil.wait_procs(victims, timeout=30)
        return killed_at


def make_cluster(root: Path) -> MultiNodeCluster:
    port, dash, metrics = free_port(), free_port(), free_port()
    cluster = MultiNodeCluster(address=f"{HEAD_IP}:{port}", dashboard=f"http://{HEAD_IP}:{dash}",
                               metrics=f"http://{HEAD_IP}:{metrics}/metrics", root=root)
    common = ["--min-worker-port=0", "--max-worker-port=0", "--disable-usage-stats",
              f"--object-store-memory={OBJECT_STORE_BYTES}"]

    def own(name: str) -> list[str]:
        node_root = root / name
        return [f"--temp-dir={node_root / 'temp'}",
                f"--object-spilling-directory={node_root / 'spill'}",
                f"--dashboard-agent-listen-port={free_port()}"]

    cluster.nodes["head"] = Node("head", HEAD_IP, [
        "--head", f"--node-ip-address={HEAD_IP}", f"--port={port}",
        f"--ray-client-server-port={free_port()}", f"--dashboard-host={HEAD_IP}",
        f"--dashboard-port={dash}", f"--metrics-export-port={metrics}", "--num-cpus=0",
        '--resources={"head": 1}', *own("head"), *common], root / "head")
    for name, ip in WORKERS.items():
        cluster.nodes[name] = Node(name, ip, [
            f"--address={cluster.address}", f"--node-ip-address={ip}", f"--num-cpus={WORKER_CPUS}",
            f"--resources={json.dumps({'llm': LLM_SLOTS, name: 1})}",
            f"--metrics-export-port={free_port()}", *own(name), *common], root / name)
    return cluster
