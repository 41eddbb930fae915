"""`--via-serve`: label rows through a running `llama-rag serve` instead of engines in the job.

Uses the OpenAI chat route with guided choice (``structured_outputs``) and token
log-probabilities for the confidence; requests in a batch run on a few threads so
the deployment batches them. The key comes from LLAMA_RAG_API_KEY.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llama_rag.client import ApiError, Client
from llama_rag.prompts import Example, PromptSpec, messages_for
from pipelines.classify_args import Mode
from pipelines.classify_examples import chosen
from pipelines.classify_llm import map_generated

THREADS = 8


class ServeClassifier:
    def __init__(self, url: str, model: str, spec: PromptSpec, mode: Mode) -> None:
        self.client, self.model, self.spec, self.mode = Client(url), model, spec, mode

    def _one(self, text: str, context: str | None,
             examples: list[Example] | None) -> tuple[str | None, float | None, str]:
        body: dict[str, Any] = {"model": self.model, "temperature": 0,
                                "messages": messages_for(self.spec, text[:4000], context, examples)}
        if self.mode == "choice":
            body.update(max_tokens=32, logprobs=True, top_logprobs=1,
                        structured_outputs={"choice": self.spec.labels.labels})
        else:
            body["max_tokens"] = 12
        try:
            reply = self.client.post("/v1/chat/completions", body)["choices"][0]
        except ApiError as exc:
            return None, None, f"error: {exc.message}"
        text_out = reply["message"]["content"] or ""
        if self.mode == "generate":
            return map_generated(text_out, self.spec.labels.labels), None, text_out
        tokens = (reply.get("logprobs") or {}).get("content") or []
        confidence = math.exp(sum(t["logprob"] for t in tokens)) if tokens else None
        label = text_out.strip() if text_out.strip() in self.spec.labels.labels else None
        return label, confidence, text_out

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        contexts = batch.get("context")
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda i: self._one(
                str(batch["text"][i]), contexts[i] if contexts is not None else None,
                chosen(self.spec.examples, batch, i)), range(len(batch["id"]))))
        return {"id": list(batch["id"]), "label": [r[0] for r in results],
                "confidence": [r[1] for r in results], "truncated": [False] * len(results),
                "raw": [r[2] for r in results], "gold": list(batch["gold"])}
