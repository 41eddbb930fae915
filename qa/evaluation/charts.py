"""Reports side by side: retrieval modes and answer modes, as JSON and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from qa.evaluation.report import EvalReport

def _save(out: Path, title: str, key: str, reports: dict[str, EvalReport],
          bars: dict[str, list[float]], metric_names: list[str]) -> list[Path]:
    """``out``.json always, ``out``.png when matplotlib is installed: one colour per bar
    group, the same group keeping its colour in every figure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    files = [out.with_suffix(".json")]
    files[0].write_text(json.dumps({"title": title, key: {m: r.model_dump()
                                                          for m, r in reports.items()}},
                                   indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return files
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(metric_names)), 3.8))
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars.items()):
        xs = [m + i * width for m in range(len(metric_names))]
        ax.bar(xs, values, width, label=label, color=f"C{i}")
        for x, v in zip(xs, values):
            ax.annotate(f"{v:.2f}", (x, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks([m + width * (len(bars) - 1) / 2 for m in range(len(metric_names))],
                  metric_names)
    ax.set_ylim(0, 1.15)
    ax.set_title(title, fontsize=10, wrap=True)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=min(3, len(bars)), frameon=False)  # below the axes: never over a bar
    fig.tight_layout()
    files.append(out.with_suffix(".png"))
    fig.savefig(files[1], dpi=110)
    plt.close(fig)
    return files


def compare_modes(reports: dict[str, EvalReport], out: Path, title: str) -> tuple[str, list[Path]]:
    """A side-by-side table of retrieval modes, saved as ``out``.json and .png;
    returns (table, files written)."""
    rows = [f"{'mode':<8} {'hit@1':>6} {'hit@5':>6} {'MRR':>6} {'p50 ms':>8} {'p95 ms':>8}"]
    for mode, r in reports.items():
        rows.append(f"{mode:<8} {r.hit_at_1:6.3f} {r.hit_at_5:6.3f} {r.mrr:6.3f} "
                    f"{r.search_p50_ms:8.1f} {r.search_p95_ms:8.1f}")
    bars = {f"{mode} (p50 {r.search_p50_ms:.0f} ms)": [r.hit_at_1, r.hit_at_5, r.mrr]
            for mode, r in reports.items()}
    return "\n".join(rows), _save(out, title, "modes", reports, bars, ["hit@1", "hit@5", "MRR"])


ANSWER_METRICS = ("token_f1", "rouge_l", "cites_reference_page", "citation_correct", "support")


def compare_answers(reports: dict[str, EvalReport], out: Path, title: str
                    ) -> tuple[str, list[Path]]:
    """Answer modes side by side, with the baseline of the first report (all saw the
    same hits) as the last group; saved as ``out``.json and .png."""
    groups = {mode: r.answers for mode, r in reports.items() if r.answers}
    first = next(iter(reports.values()))
    if first.baseline:
        groups["extractive baseline (no LLM)"] = first.baseline
    rows = [f"{'answers':<30} " + " ".join(f"{m[:12]:>12}" for m in ANSWER_METRICS)
            + f" {'refused off':>11} {'ask p50 ms':>10}"]
    for label, a in groups.items():
        r = reports.get(label)
        off = "" if not r or r.refusal_rate_unanswerable is None else \
            f"{r.refusal_rate_unanswerable:.3f}"
        p50 = "" if not r or r.ask_p50_ms is None else f"{r.ask_p50_ms:.0f}"
        rows.append(f"{label:<30} " + " ".join(f"{getattr(a, m) or 0:12.3f}"
                                               for m in ANSWER_METRICS) + f" {off:>11} {p50:>10}")
    bars = {label: [getattr(a, m) or 0.0 for m in ANSWER_METRICS] for label, a in groups.items()}
    names = ["token-F1", "ROUGE-L", "cites page", "citation\ncorrect", "support"]
    return "\n".join(rows), _save(out, title, "answer_modes", reports, bars, names)
