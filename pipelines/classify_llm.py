"""The classification prompt, label handling and the vLLM stage of the job.

``choice`` mode asks for one decoding step: when every label starts with its own
token, the engine is restricted to those first tokens (``allowed_token_ids``) and
the softmax of their log-probabilities is the label distribution, so the answer is
always a label and the confidence is real. The instructions and label list are a
shared prompt prefix that vLLM's prefix cache computes once. When two labels share
a first token, it falls back to guided choice (``structured_outputs.choice``).
``generate`` mode lets the model write a few words and maps them onto a label.
"""

from __future__ import annotations

import math
import os
import re
from typing import Any

from llama_rag.prompts import Example, PromptSpec, messages_for
from pipelines.classify_args import Mode
from pipelines.classify_examples import chosen



CONTENT_FREE = ["N/A", "", "[MASK]"]  # inputs that carry no information (Zhao et al., 2021)


def calibrated(probs: list[float], prior: list[float]) -> list[float]:
    """Divide out the model's label prior, measured on content-free inputs, and renormalise.

    Small models lean towards some labels whatever the text says (SmolLM2-135M put
    96% of Debian packages in "python"); dividing by that lean is contextual
    calibration, which here took accuracy from 0.20 to 0.55 (0.63 with 2 examples).
    """
    scaled = [p / max(q, 1e-9) for p, q in zip(probs, prior)]
    total = sum(scaled)
    return [v / total for v in scaled] if total else probs


def first_tokens(tokenizer, labels: list[str]) -> list[int] | None:
    """Each label's first token id at the start of the answer, or None if two share one."""
    ids = [tokenizer.encode(label, add_special_tokens=False)[0] for label in labels]
    return ids if len(set(ids)) == len(ids) else None


_WORD = re.compile(r"[\w+.-]+")


def map_generated(text: str, labels: list[str]) -> str | None:
    """The label free text names: exact, then first word, then the only label it mentions."""
    clean = text.strip().strip("\"'`*.:").lower()
    by_lower = {label.lower(): label for label in labels}
    if clean in by_lower:
        return by_lower[clean]
    words = _WORD.findall(clean)
    if words and words[0] in by_lower:
        return by_lower[words[0]]
    mentioned = [label for label in labels if re.search(rf"\b{re.escape(label.lower())}\b", clean)]
    return mentioned[0] if len(mentioned) == 1 else None


def label_probs(logprobs: dict[int, float], token_ids: list[int]) -> list[float]:
    """The distribution over labels from their first tokens' log-probabilities."""
    values = [logprobs.get(t, -math.inf) for t in token_ids]
    top = max(values)
    weights = [math.exp(v - top) if v > -math.inf else 0.0 for v in values]
    total = sum(weights)
    return [w / total for w in weights]


def blended(llm: list[float], head: list[float], head_weight: float) -> list[float]:
    """An ensemble's label probabilities: the head's share ``head_weight`` of its own,
    the rest the LLM's (both sum to 1, so the blend does)."""
    return [head_weight * h + (1 - head_weight) * p for p, h in zip(llm, head)]


def truncated(tokenizer, text: str, max_tokens: int) -> tuple[str, bool]:
    """``text`` cut to ``max_tokens`` tokens, and whether it was (the job flags such rows)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) <= max_tokens:
        return text, False
    return tokenizer.decode(ids[:max_tokens]), True


def pick(probs: list[float]) -> tuple[int, float]:
    """(index of the best label, its probability)."""
    best = max(range(len(probs)), key=probs.__getitem__)
    return best, probs[best]


class VLLMClassifier:
    """Ray Data actor: one in-process vLLM engine labelling batches of rows."""

    def __init__(self, model_path: str, engine_kwargs: dict[str, Any], env: dict[str, str],
                 spec: PromptSpec, mode: Mode, lora: dict[str, Any] | None = None,
                 examples_k: int | None = None, head_weight: float | None = None) -> None:
        os.environ.update(env)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # no orphan engine process
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        labels = spec.labels.labels
        self.spec, self.mode, self.labels, self.examples_k = spec, mode, labels, examples_k
        self.head_weight = head_weight  # an ensemble adapter: the head's share (head_probs)
        self.llm = LLM(model=model_path, logprobs_mode="processed_logprobs",
                       max_logprobs=max(20, len(labels)), **engine_kwargs)
        self.lora = None
        if lora:  # a published LoRA adapter (pipelines.finetune): every request uses it
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(lora["name"], 1, lora["path"])
        self.tokenizer = self.llm.get_tokenizer()
        self.token_ids = first_tokens(self.tokenizer, labels) if mode == "choice" else None
        if mode == "generate":
            self.params = SamplingParams(temperature=0, max_tokens=12)
        elif self.token_ids:
            self.params = SamplingParams(temperature=0, max_tokens=1, logprobs=len(labels),
                                         allowed_token_ids=self.token_ids)
        else:
            self.params = SamplingParams(temperature=0, max_tokens=32, logprobs=1,
                                         structured_outputs=StructuredOutputsParams(choice=labels))

        self.prior = self._prior() if self.token_ids and spec.calibrate else None

    def _prompt(self, text: str, context: str | None = None,
                examples: list[Example] | None = None) -> str:
        return self.tokenizer.apply_chat_template(messages_for(self.spec, text, context, examples),
                                                  tokenize=False, add_generation_prompt=True)

    def _generate(self, prompts: list[str]):
        return self.llm.generate(prompts, self.params, use_tqdm=False, lora_request=self.lora)

    def _probs(self, completion) -> list[float]:
        step = completion.logprobs[0]
        return label_probs({t: lp.logprob for t, lp in step.items()}, self.token_ids)

    def _prior(self) -> list[float]:
        # with kNN examples a row sees k of them: the prior is measured with k, not all
        k = self.examples_k or len(self.spec.examples)
        outs = self._generate([self._prompt(t, examples=self.spec.examples[:k])
                               for t in CONTENT_FREE])
        probs = [self._probs(o.outputs[0]) for o in outs]
        return [sum(col) / len(col) for col in zip(*probs)]

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        texts, cut = zip(*(truncated(self.tokenizer, str(t), self.spec.max_text_tokens)
                           for t in batch["text"]))
        contexts = batch.get("context")
        prompts = [self._prompt(t, contexts[i] if contexts is not None else None,
                                chosen(self.spec.examples, batch, i))
                   for i, t in enumerate(texts)]
        outputs = self._generate(prompts)
        labels, confidences, raws = [], [], []
        head = batch.get("head_probs") if self.head_weight is not None else None
        for i, out in enumerate(outputs):
            completion = out.outputs[0]
            raws.append(completion.text)
            if self.mode == "generate":
                labels.append(map_generated(completion.text, self.labels))
                confidences.append(None)
            elif self.token_ids:
                probs = self._probs(completion)
                probs = calibrated(probs, self.prior) if self.prior else probs
                if head is not None:
                    probs = blended(probs, list(head[i]), self.head_weight)
                best, p = pick(probs)
                labels.append(self.labels[best])
                confidences.append(round(p, 4))
            else:
                text = completion.text.strip()
                labels.append(text if text in self.labels else None)
                total = sum(next(iter(s.values())).logprob for s in completion.logprobs or [])
                confidences.append(round(math.exp(total), 4))
        return {"id": list(batch["id"]), "label": labels, "confidence": confidences,
                "truncated": list(cut), "raw": raws, "gold": list(batch["gold"])}
