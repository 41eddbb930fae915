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


def scratch_settings(prefix: str) -> tuple[Path, Any]:
    """(a temporary folder, the settings with the adapter registry and checkpoints inside
    it, offline): what a benchmark trains never lands in the user's registry."""
    import tempfile

    from llama_rag.config import load_settings
    from llama_rag.model_files import apply_offline_policy

    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["LLAMA_RAG_ADAPTERS__DIR"] = str(work / "adapters")
    os.environ["LLAMA_RAG_ADAPTERS__CHECKPOINTS"] = str(work / "runs")
    settings = load_settings()
    apply_offline_policy(settings.models)
    return work, settings


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _title(fig, title: str, width_in: float) -> None:
    """A title that fits: wrapped to the figure's width (about 11 characters an inch)."""
    import textwrap

    fig.suptitle("\n".join(textwrap.wrap(title, max(30, int(width_in * 11)))), fontsize=11)


def bar_chart(name: str, title: str, labels: list[str], series: dict[str, list[float]],
              ylabel: str) -> Path:
    """One panel per metric, one bar per path; a path keeps its colour in every panel."""
    plt = _pyplot()
    width = max(4.5 * len(series), 6.0)
    fig, axes = plt.subplots(1, len(series), figsize=(width, 3.8), squeeze=False)
    colours = [PALETTE[i % len(PALETTE)] for i in range(len(labels))]
    for ax, (metric, values) in zip(axes[0], series.items()):
        ax.bar(range(len(values)), values, color=colours)
        ax.set_xticks(range(len(values)), labels)
        ax.set_title(metric, fontsize=10)
        ax.tick_params(axis="x", labelrotation=15, labelsize=8)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)
    axes[0][0].set_ylabel(ylabel)
    _title(fig, title, width)
    fig.tight_layout()
    return _save_figure(fig, name)


def grouped_chart(name: str, title: str, groups: list[str], paths: dict[str, list[float]],
                  ylabel: str) -> Path:
    """Bars grouped by level (``groups``: concurrency, say), one colour per path with
    a legend under the axes: ours against the baseline at each level at a glance."""
    plt = _pyplot()
    width = max(6.0, 1.2 * len(groups) * len(paths))
    fig, ax = plt.subplots(figsize=(width, 4.2))
    step = 0.8 / len(paths)
    for j, (path, values) in enumerate(paths.items()):
        xs = [i - 0.4 + step * (j + 0.5) for i in range(len(groups))]
        ax.bar(xs, values, step, label=path, color=PALETTE[j % len(PALETTE)])
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.3g}", (x, v), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(paths), fontsize=8,
              frameon=False)
    _title(fig, title, width)
    fig.tight_layout()
    return _save_figure(fig, name)


def _save_figure(fig, name: str) -> Path:
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
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
