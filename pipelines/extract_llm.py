"""The extraction job's LLM stages: vLLM engines in the job, or a running deployment.

Both ask for one JSON object under guided decoding (vLLM structured outputs with
the job's JSON Schema), at temperature 0; the stage returns the raw text and why
generation stopped, and the driver validates it (pipelines.extract_schema), so the
two stages cannot disagree on what counts as a valid row.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llama_rag.client import ApiError, Client
from llama_rag.prompts import ExtractSpec, extract_messages
from pipelines.classify_llm import truncated as cut_to

THREADS = 8


def _columns(batch: dict[str, Any], raws: list[str], finish: list[str | None],
             truncated: list[bool]) -> dict[str, list]:
    # a column of nulls reaches the stage as NaN floats (Ray Data's numpy batches)
    gold = [g if isinstance(g, str) else None for g in batch["gold"]]
    return {"id": list(batch["id"]), "raw": raws, "finish": finish,
            "truncated": [bool(t) for t in truncated], "gold": gold}


class VLLMExtractor:
    """Ray Data actor: one in-process vLLM engine extracting a JSON object per row."""

    def __init__(self, model_path: str, engine_kwargs: dict[str, Any], env: dict[str, str],
                 spec: ExtractSpec, lora: dict[str, Any] | None = None) -> None:
        os.environ.update(env)
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # no orphan engine process
        from vllm import LLM, SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        self.spec = spec
        self.llm = LLM(model=model_path, **engine_kwargs)
        self.lora = None
        if lora:  # an adapter trained with `finetune --task extract`
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest(lora["name"], 1, lora["path"])
        self.tokenizer = self.llm.get_tokenizer()
        self.params = SamplingParams(
            temperature=0, max_tokens=spec.max_output_tokens,
            structured_outputs=StructuredOutputsParams(json=spec.json_schema))

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        texts, truncated = zip(*(cut_to(self.tokenizer, str(t), self.spec.max_text_tokens)
                                 for t in batch["text"]))
        prompts = [self.tokenizer.apply_chat_template(extract_messages(self.spec, t),
                                                      tokenize=False, add_generation_prompt=True)
                   for t in texts]
        outputs = self.llm.generate(prompts, self.params, use_tqdm=False,
                                    lora_request=self.lora)
        return _columns(batch, [o.outputs[0].text for o in outputs],
                        [o.outputs[0].finish_reason for o in outputs], list(truncated))


class ServeExtractor:
    """`--via-serve`: the OpenAI chat route of a running `llama-rag serve`, with the schema
    as ``structured_outputs.json``; a few threads so the deployment batches requests."""

    def __init__(self, url: str, model: str, spec: ExtractSpec) -> None:
        self.client, self.model, self.spec = Client(url), model, spec

    def _one(self, text: str) -> tuple[str, str | None]:
        # characters, not tokens: the deployment's tokenizer is not here (about 4 a token)
        body = {"model": self.model, "temperature": 0, "max_tokens": self.spec.max_output_tokens,
                "messages": extract_messages(self.spec, text[: 4 * self.spec.max_text_tokens]),
                "structured_outputs": {"json": self.spec.json_schema}}
        try:
            reply = self.client.post("/v1/chat/completions", body)["choices"][0]
        except ApiError as exc:
            return "", f"error: {exc.message}"
        return reply["message"]["content"] or "", reply.get("finish_reason")

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(lambda t: self._one(str(t)), batch["text"]))
        return _columns(batch, [r[0] for r in results], [r[1] for r in results],
                        [len(str(t)) > 4 * self.spec.max_text_tokens for t in batch["text"]])
