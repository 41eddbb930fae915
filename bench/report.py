"""Write a benchmark's JSON and PNG under bench/results/, and print its table."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def bar_chart(name: str, title: str, labels: list[str], series: dict[str, list[float]],
              ylabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4.5 * len(series), 3.6), squeeze=False)
    for ax, (metric, values) in zip(axes[0], series.items()):
        palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"]
        ax.bar(labels, values, color=[palette[i % len(palette)] for i in range(len(values))])
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="x", labelrotation=15, labelsize=8)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    return path


def serve_app(settings, name: str) -> str:
    """Deploy the app on a free loopback port in a local Ray; returns its base URL."""
    import socket

    from llama_rag.ray_runtime import ensure_ray

    ensure_ray()
    from ray import serve

    from services.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app(settings), name=name, route_prefix="/")
    return f"http://127.0.0.1:{port}"
