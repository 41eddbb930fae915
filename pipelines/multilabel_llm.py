"""Multi-label classification with the LLM: for each label, "does it apply to this text,
yes or no?", and P(yes) read off one decoding step.

A row's questions differ only in their last words (llama_rag.prompts.yes_no_messages),
and a batch of rows x labels is one ``generate`` call. The prefix cache reuses the
shared instructions; a short row's own text is read again for each label (the CPU
backend caches whole 128-token blocks; the cost per label is in docs/finetune.md).
The answer is restricted to the first tokens of "yes" and "no"
(``allowed_token_ids``), so P(yes) is their softmax.

A label applies when its P(yes) clears its bar. With no labeled rows the scores are
calibrated (each label's P(yes) on content-free inputs divided out, as choice mode
does for single labels) and the bar is 0.5; ``finetune --multi-label`` scores its
held-out rows and picks each label's bar for its F1 there
(pipelines.multilabel.thresholds), published as a version with method ``prompt``:
no weights, only the bars and the prompt they were chosen with.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from llama_rag.config import Settings
from llama_rag.errors import InvalidInputError
from llama_rag.prompts import PromptSpec, yes_no_messages
from pipelines.classify_llm import CONTENT_FREE, truncated
from pipelines.embedding_head import picked

THRESHOLDS_FILE = "thresholds.json"
YES = ("yes", "Yes", "YES")
NO = ("no", "No", "NO")


def answer_ids(tokenizer) -> tuple[list[int], list[int]]:
    """The first token ids of the spellings of yes and of no (each set without the other's)."""
    def first(words: tuple[str, ...]) -> list[int]:
        return sorted({tokenizer.encode(w, add_special_tokens=False)[0] for w in words})

    yes, no = first(YES), first(NO)
    return [t for t in yes if t not in no], [t for t in no if t not in yes]


def p_yes(logprobs: dict[int, float], yes: list[int], no: list[int]) -> float:
    """P(yes) against P(no) from one step's log-probabilities (0.5 when neither shows)."""
    y = sum(math.exp(logprobs[t]) for t in yes if t in logprobs)
    n = sum(math.exp(logprobs[t]) for t in no if t in logprobs)
    return y / (y + n) if y + n > 0 else 0.5


def calibrated_yes(p: float, prior: float) -> float:
    """P(yes) with the model's lean for this label divided out (binary contextual
    calibration): the prior's odds removed, so an uninformative text scores 0.5."""
    a, b = p / max(prior, 1e-9), (1 - p) / max(1 - prior, 1e-9)
    return a / (a + b)


def load_thresholds(folder: Path, labels: list[str]) -> list[float]:
    """A published ``llm-yes-no`` version's bars, in ``labels``' order."""
    saved = json.loads((Path(folder) / THRESHOLDS_FILE).read_text())
    return [float(saved["thresholds"][label]) for label in labels]


class VLLMYesNo:
    """Ray Data actor (and plain Ray actor, for the held-out rows of the fine-tuning job):
    one in-process vLLM engine scoring every label of a batch of rows in one call."""

    def __init__(self, model_path: str, engine_kwargs: dict[str, Any], env: dict[str, str],
                 spec: PromptSpec, separator: str = ";", thresholds: list[float] | None = None
                 ) -> None:
        os.environ.update(env)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # no orphan engine process
        from vllm import LLM, SamplingParams

        self.spec, self.labels, self.separator = spec, spec.labels.labels, separator
        self.llm = LLM(model=model_path, logprobs_mode="processed_logprobs", max_logprobs=20,
                       **engine_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.yes, self.no = answer_ids(self.tokenizer)
        allowed = self.yes + self.no
        self.params = SamplingParams(temperature=0, max_tokens=1, logprobs=len(allowed),
                                     allowed_token_ids=allowed)
        # bars chosen on labeled rows apply to raw scores; with none, calibrate and use 0.5
        self.bars = np.asarray(thresholds if thresholds is not None
                               else [0.5] * len(self.labels), dtype=np.float32)
        self.prior = self.scores(CONTENT_FREE, calibrate=False).mean(axis=0) \
            if thresholds is None and spec.calibrate else None

    def _cut(self, texts) -> tuple[list[str], list[bool]]:
        """Each text cut to the prompt's token limit, and whether it was."""
        pairs = [truncated(self.tokenizer, str(t), self.spec.max_text_tokens) for t in texts]
        return [t for t, _ in pairs], [c for _, c in pairs]

    def scores(self, texts: list[str], calibrate: bool = True) -> np.ndarray:
        """Rows x labels P(yes) (each text cut to the prompt's token limit), calibrated
        when this actor labels without bars."""
        return self._scores(self._cut(texts)[0], calibrate)

    def _scores(self, texts: list[str], calibrate: bool = True) -> np.ndarray:
        prompts = [self.tokenizer.apply_chat_template(
            yes_no_messages(self.spec, text, label), tokenize=False, add_generation_prompt=True)
            for text in texts for label in self.labels]
        outs = self.llm.generate(prompts, self.params, use_tqdm=False)
        flat = [p_yes({t: lp.logprob for t, lp in o.outputs[0].logprobs[0].items()},
                      self.yes, self.no) for o in outs]
        probs = np.asarray(flat, dtype=np.float64).reshape(len(texts), len(self.labels))
        if calibrate and self.prior is not None:
            probs = np.vectorize(calibrated_yes)(probs, self.prior[None, :])
        return probs

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        texts, cut = self._cut(batch["text"])
        probs = self._scores(texts)
        labels, confidence = picked(probs, self.bars, self.labels, self.separator)
        raws = [json.dumps({label: round(float(p), 4) for label, p in zip(self.labels, row)})
                for row in probs]
        return {"id": list(batch["id"]), "label": labels, "confidence": confidence,
                "truncated": cut, "raw": raws, "gold": list(batch["gold"])}


def stage_kwargs(spec: PromptSpec, settings: Settings, separator: str,
                 thresholds: list[float] | None) -> dict[str, Any]:
    """The actor's constructor arguments in a job (the base model: no weights to add)."""
    from llama_rag.engine import engine_env
    from pipelines.adapter_merge import engine_for

    model_path, kwargs, _ = engine_for(None, settings)
    return {"model_path": model_path, "engine_kwargs": kwargs, "env": engine_env(settings),
            "spec": spec, "separator": separator, "thresholds": thresholds}


def train_llm_multi(data, settings: Settings, separator: str, echo: Callable[[str], None]
                    ) -> tuple[dict[str, Any], Path]:
    """Score the held-out rows with the base LLM, choose each label's bar there, evaluate;
    the metrics and a folder holding ``thresholds.json``."""
    import time

    from llama_rag.engine import actor_resources
    from llama_rag.ray_runtime import ensure_ray
    from pipelines.classify_metrics import multilabel_metrics
    from pipelines.multilabel import indicator, thresholds

    if not data.eval:
        raise InvalidInputError("the LLM's per-label bars are chosen on held-out rows: give "
                                "--eval-input or an --eval-fraction above 0", param="eval-fraction")
    ensure_ray(settings.ray.num_cpus)
    import ray

    labels, spec = data.labels.labels, data.spec
    started = time.perf_counter()
    # placeholder bars: no content-free prior is measured, the raw scores are what is asked
    actor = ray.remote(**actor_resources(settings))(VLLMYesNo).remote(
        **stage_kwargs(spec, settings, separator, thresholds=[0.5] * len(labels)))
    try:
        probs = ray.get(actor.scores.remote([r.text for r in data.eval], calibrate=False))
    finally:
        ray.kill(actor)
    gold = [r.target for r in data.eval]
    bars = thresholds(probs, indicator(gold, labels, separator))
    m = multilabel_metrics(picked(probs, bars, labels, separator)[0], gold, separator)
    echo(f"LLM yes/no on the held-out rows: micro-F1 {m.micro_f1}, macro-F1 {m.macro_f1} "
         "(thresholds chosen on them, one per label)")
    folder = Path(tempfile.mkdtemp(prefix="llama-rag-prompt-"))
    chosen = dict(zip(labels, bars.round(4).tolist()))
    (folder / THRESHOLDS_FILE).write_text(json.dumps({"thresholds": chosen}, indent=2))
    return {"eval_rows": len(gold), "eval_micro_f1": m.micro_f1, "eval_macro_f1": m.macro_f1,
            "eval_exact_match": m.exact_match, "eval_accuracy": m.exact_match,
            "per_label": m.per_label, "thresholds": chosen,
            "train_seconds": round(time.perf_counter() - started, 2)}, folder

