"""Our own metrics on Ray's Prometheus endpoint, beside Serve's and Ray Data's.

Each factory is called in the process that records (a Serve replica's constructor,
the classification driver once Ray is up), and the caller keeps the object. Ray
exports them with a ``ray_`` prefix (``ray_llama_rag_refusals_total``); the alert
rules and the dashboard in infra/monitoring read them there.
"""

from __future__ import annotations

LATENCY_BOUNDARIES_MS = [5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]


def retrieval_latency():
    from ray.util.metrics import Histogram

    return Histogram("llama_rag_retrieval_latency_ms",
                     description="Query embedding + search time per retrieval, in ms.",
                     boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("collection", "mode"))


def refusals():
    from ray.util.metrics import Counter

    return Counter("llama_rag_refusals",
                   description="Questions answered 'not in the documents': no chunk reached "
                               "qa.min_score (no_relevant_chunks) or the model declined.",
                   tag_keys=("reason",))


def tokens_generated():
    from ray.util.metrics import Counter

    return Counter("llama_rag_tokens_generated",
                   description="Completion tokens the LLM generated for /v1/ask answers.",
                   tag_keys=("route",))


def classify_rows():
    from ray.util.metrics import Counter

    return Counter("llama_rag_classify_rows",
                   description="Classification rows finished: labeled, or failed (an input "
                               "error or an unmapped model answer, each in errors.jsonl).",
                   tag_keys=("outcome",))
