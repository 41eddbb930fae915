"""The corpus's tuned passage scorer: a cross-encoder (`llama-rag tune`, pipelines.tune)
read from the adapter registry, judging "does this passage answer the question?".

The retrieval deployment, `llama-rag eval --index-dir` and the tune job's gate load
it by the name in ``qa.passage_scorer`` and hand it to qa.answerer; the general
engine asks it about its best few openings only (qa.extractive.RERANK), which keeps
the extractive answer fast on two cores.
"""

from __future__ import annotations

from pathlib import Path

from llama_rag.adapters import AdapterStore, Manifest
from llama_rag.config import Settings
from llama_rag.errors import InvalidInputError

MAX_LENGTH = 192  # tokens of question + passage (a passage is at most 60 words)
METHOD = "cross-encoder"


class CrossEncoderScorer:
    """A sentence-transformers ``CrossEncoder`` with one sigmoid output."""

    def __init__(self, path: Path | str, threads: int | None = None, label: str = "candidate"
                 ) -> None:
        from sentence_transformers import CrossEncoder

        if threads:
            import torch

            torch.set_num_threads(threads)
        self.path, self.label = str(path), label
        self.model = CrossEncoder(self.path, device="cpu", max_length=MAX_LENGTH,
                                  local_files_only=True)

    def score(self, question: str, passages: list[str]) -> list[float]:
        if not passages:
            return []
        probs = self.model.predict([(question, p) for p in passages], batch_size=16,
                                   show_progress_bar=False)
        return [float(p) for p in probs]


def check_scorer(manifest: Manifest) -> Manifest:
    """``manifest`` if it is a passage scorer's, else a clear error."""
    if manifest.method != METHOD:
        raise InvalidInputError(
            f"qa.passage_scorer {manifest.name!r} is a {manifest.method} adapter, not a passage "
            "scorer: name one `llama-rag tune` published", param="passage_scorer")
    return manifest


def load_scorer(settings: Settings, name: str | None = None) -> CrossEncoderScorer | None:
    """The published scorer ``name`` (default ``qa.passage_scorer``), or None: untuned."""
    name = name or settings.qa.passage_scorer
    if not name:
        return None
    adapter = AdapterStore.of(settings.adapters).open(name)
    check_scorer(adapter.manifest)
    return CrossEncoderScorer(adapter.path, label=f"{name}@{adapter.manifest.version}")
