"""Settings: one typed object, read from a YAML file, LLAMA_RAG_* variables and CLI flags.

Precedence, lowest to highest: built-in defaults < YAML file (``--config``) <
environment (``LLAMA_RAG_INDEX__DIR=...``, nested keys joined by ``__``) < CLI flags.
Every model forbids unknown keys so a typo is an error, not a silent default.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError,
                      field_validator, model_validator)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from llama_rag.errors import ConfigError

DEFAULT_COLLECTION = "default"
COLLECTION_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # also a safe folder name
DEFAULT_INDEX_CACHE = Path("~/.cache/llama-rag/index-cache")  # index.cache_dir
ENV_PREFIX = "LLAMA_RAG_"
RENAMED = {  # old key -> new key: loading an old key fails with a message naming the new one
    "qa.retriever_num_cpus": "retrieval.num_cpus",
    "ingest.ray_num_cpus": "ray.num_cpus",
    "serve.max_ongoing_requests": "serve.max_running_requests",  # llm.max_ongoing_requests is Serve's
}
API_KEYS_ENV = "LLAMA_RAG_API_KEYS"  # comma-separated, the usual way to pass secrets


class StrictModel(BaseModel):
    """Base of every settings section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSettings(StrictModel):
    llm: str | None = Field(
        None,
        description="LLaMA-architecture checkpoint directory or Hugging Face id; "
        "unset means the bundled SmolLM2-135M-Instruct prepared by `llama-rag setup`.",
    )
    embedder: str | None = Field(
        None,
        description="sentence-transformers model directory or Hugging Face id; "
        "unset means the bundled all-MiniLM-L6-v2.",
    )
    embed_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Device for the torch embedder; auto picks cuda when a GPU is "
        "visible. The onnx and openvino backends run on the CPU."
    )
    embed_backend: Literal["torch", "onnx", "openvino"] = Field(
        "openvino",
        description="What runs the embedder: sentence-transformers on torch, or a copy "
        "exported once into the models folder for ONNX Runtime or OpenVINO (CPU). "
        "Set torch for GPU embedding. Part of the index's embedder identity "
        "(docs/benchmarks.md: the measured speed and agreement of each).",
    )
    embed_quantization: Literal["none", "int8"] = Field(
        "none",
        description="int8: onnx -> dynamic int8 (per-channel); openvino -> int8 weights "
        "with dynamic int8 activations. none: float32. torch is always float32.",
    )
    allow_downloads: bool = Field(
        False,
        description="Allow hub ids to be downloaded. Off keeps HF_HUB_OFFLINE=1, "
        "so nothing reaches a model hub by default.",
    )


class ChunkSettings(StrictModel):
    max_tokens: int = Field(
        200, ge=16, le=8192,
        description="Largest chunk in embedder tokens; keep below the embedder's "
        "max_seq_length (256 for MiniLM) or the tail is truncated.",
    )
    overlap_tokens: int = Field(
        32, ge=0, description="Tokens of the previous chunk repeated at the start of the next."
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "ChunkSettings":
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be smaller than "
                f"max_tokens ({self.max_tokens})"
            )
        return self


DEFAULT_EXCLUDES = [
    ".*", "**/.*",  # hidden files and folders
    "_sources/*", "**/_sources/*", "_static/*", "**/_static/*",  # Sphinx copies and assets
    "genindex*.html", "**/genindex*.html", "search.html", "py-modindex.html",
]


def _location(value: Any) -> Any:
    """Paths become strings; a URI keeps its ``//`` (a Path would fold it to one slash)."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")
    return value


class IndexSettings(StrictModel):
    dir: Annotated[str, BeforeValidator(_location)] = Field(
        "indexes/default",
        description="Index directory (CURRENT + versions/), or a filesystem URI shared by a "
        "cluster's nodes: s3://bucket/path, gs://bucket/path, hdfs://..., file:///path.")
    cache_dir: Path = Field(
        DEFAULT_INDEX_CACHE,
        description="Where versions of a URI index are staged and cached on this machine.")
    kind: Literal["auto", "flat", "hnsw", "ivfpq"] = Field(
        "auto", description="FAISS index type; auto is flat below `flat_max`, HNSW above."
    )
    flat_max: int = Field(50_000, ge=1, description="Largest vector count that auto keeps flat.")
    hnsw_m: int = Field(32, ge=4, le=256, description="HNSW graph degree M.")
    hnsw_ef_construction: int = Field(200, ge=8, description="HNSW efConstruction.")
    hnsw_ef_search: int = Field(128, ge=1, description="HNSW efSearch at query time.")
    ivf_nlist: int | None = Field(
        None, ge=1, description="IVF lists; unset derives 4*sqrt(n) from the vector count."
    )
    ivf_nprobe: int | None = Field(
        None, ge=1, description="IVF lists probed per query; unset derives nlist/8 (at least 8)."
    )
    pq_m: int = Field(48, ge=1, description="PQ sub-quantizers; must divide the embedding dimension.")
    pq_refine: int = Field(
        8, ge=0,
        description="IVF-PQ: fetch k*pq_refine candidates and re-score them exactly with the "
        "version's memory-mapped vectors.npy (0: PQ scores only, much lower recall).")
    keep_versions: int = Field(3, ge=1, description="Published versions kept on disk.")
    extensions: list[str] = Field(
        [".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".jsonl", ".docx", ".pptx",
         ".xlsx", ".ods", ".epub", ".eml", ".png", ".jpg", ".jpeg", ".tif", ".tiff"],
        description="File suffixes that are indexed; other files are skipped silently.",
    )
    exclude: list[str] = Field(
        DEFAULT_EXCLUDES,
        description="Glob patterns, relative to each indexed root, of files to skip.",
    )
    jsonl_text_field: str = Field("text", description="Field holding the text in .jsonl records.")
    max_file_mb: float = Field(50.0, gt=0, description="Larger files are listed as failed.")


class IngestSettings(StrictModel):
    embed_concurrency: int = Field(1, ge=1, description="Embedder actors in the Ray Data pool.")
    embed_batch_size: int = Field(
        256, ge=1, description="Chunks per Ray Data batch handed to an embedder actor.")
    encode_batch_size: int = Field(
        32, ge=1,
        description="Chunks per model forward pass. The embedder sorts each Ray batch by "
        "length first, so small passes pad little; 32 is fastest on CPU, raise it on GPU.")
    embed_num_gpus: float = Field(0.0, ge=0, description="GPUs per embedder actor (0 on CPU).")
    embed_num_cpus: float = Field(1.0, gt=0, description="Logical CPUs Ray reserves per embedder actor.")
    embed_threads: int | None = Field(
        None, ge=1,
        description="Threads per embedder actor (torch, ONNX Runtime or OpenVINO); unset "
        "shares the node's cores among the actors (Ray would otherwise pin OMP to 1 thread).",
    )
    load_concurrency: int = Field(1, ge=1, description="Loader/chunker actors.")
    ocr: Literal["auto", "off", "force"] = Field(
        "auto", description="OCR (Tesseract) for PDF pages without a text layer and for image "
        "files: auto reads those, force reads every PDF page from its image, off reads none.")
    ocr_language: str = Field(
        "eng", pattern=r"^[a-z_]{3,8}(\+[a-z_]{3,8})*$",
        description="Tesseract languages, e.g. eng or deu+eng (each needs tesseract-ocr-LANG).")
    files_per_batch: int = Field(4, ge=1, description="Files per loader call.")


class RaySettings(StrictModel):
    """The Ray a command starts when RAY_ADDRESS names none (indexing, classification, serve)."""

    num_cpus: int | None = Field(
        None, ge=1,
        description="Logical CPUs of a Ray started locally; unset uses max(4, cores) "
        "so the loader and embedder actors fit on a 2-core laptop.",
    )


class LLMSettings(StrictModel):
    """The vLLM engine behind the Serve LLM deployment; names follow vLLM's engine args."""

    model_id: str = Field("smollm2", description="Name clients pass as `model` (/v1/models).")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights and activations dtype. auto: the model's own on a GPU; "
        "on a CPU bfloat16 where it has native bf16 (AVX512-BF16, AMX), else float32 "
        "(bf16 prefill was 4.9x slower on an AVX2-only CPU; see llama_rag.engine).")
    max_model_len: int = Field(2048, ge=64, description="Prompt + completion tokens per request.")
    quantization: str | None = Field(
        None, description="vLLM quantization (awq, gptq, fp8) on GPU; none on CPU.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one replica spans.")
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1,
        description="Share of GPU memory for weights + KV cache; on the CPU backend the share "
        "of RAM it reserves (vLLM refuses to start when it is more than is free).")
    enable_prefix_caching: bool = Field(True, description="Reuse KV cache of shared prefixes.")
    max_num_batched_tokens: int = Field(2048, ge=64, description="Tokens per engine step.")
    max_num_seqs: int = Field(64, ge=1, description="Sequences scheduled together.")
    enforce_eager: bool = Field(True, description="Skip graph capture (faster start on CPU).")
    num_gpus: float = Field(0, ge=0, description="GPUs per replica (0: the CPU backend).")
    num_cpus: float = Field(1, gt=0, description="Logical CPUs Ray reserves per replica.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type, e.g. H100.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling lower bound.")
    max_replicas: int = Field(1, ge=1, description="Autoscaling upper bound.")
    target_ongoing_requests: int = Field(16, ge=1, description="Autoscaling target per replica.")
    max_ongoing_requests: int = Field(64, ge=1, description="Requests a replica runs at once.")
    upscale_delay_s: float = Field(
        30, ge=0, description="Autoscaling: how long the load must call for more replicas "
        "before Serve adds one (Serve's default 30).")
    downscale_delay_s: float = Field(
        600, ge=0, description="Autoscaling: how long the load must call for fewer replicas "
        "before Serve removes one (Serve's default 600).")
    resources: dict[str, float] = Field(
        {}, description="Custom Ray resources each LLM replica (and each classification "
        "vLLM actor) reserves, e.g. {\"llm\": 1}: only nodes that offer them (`ray start "
        "--resources`) take LLM work (a GPU pool names its GPU nodes this way).")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="Placement-group strategy of each LLM replica's bundles (Ray "
        "Serve LLM's placement_group_config). SPREAD: Ray's spread policy, which put the "
        "second replica on the other worker in tests/multinode (docs/deploy.md); "
        "STRICT_PACK keeps a tensor-parallel replica's bundles on one node.")

    @field_validator("resources")
    @classmethod
    def _custom_resources(cls, value: dict[str, float]) -> dict[str, float]:
        builtin = sorted(set(value) & {"CPU", "GPU", "memory", "object_store_memory"})
        if builtin:
            raise ValueError(f"{', '.join(builtin)} are set by llm.num_cpus / llm.num_gpus, "
                             "not llm.resources")
        bad = sorted(k for k, v in value.items() if v <= 0)
        if bad:
            raise ValueError(f"resource amounts must be above 0: {', '.join(bad)}")
        return value

    log_engine_metrics: bool = Field(
        False, description="vLLM's per-step engine metrics on Ray's Prometheus endpoint "
        "(Ray Serve LLM's log_engine_metrics, on in infra/serve/gpu-pool.yaml). Off on the CPU, "
        "where recording them every step competes with the engine for its cores "
        "(docs/benchmarks.md). Serve's own request metrics stay on.")
    stream_batching_interval_ms: float | None = Field(
        500, ge=0,
        description="How long the LLM replica gathers streamed tokens before sending them on "
        "(Ray Serve LLM's experimental stream_batching_interval_ms; unset: Ray's 50 ms). "
        "The first chunk always leaves at once (services/llm_server.py). Each later chunk "
        "costs the proxy and the ingress CPU, so fewer, larger chunks leave the cores to the "
        "engine (docs/benchmarks.md).")
    cpu_kvcache_space_gb: int | None = Field(
        None, ge=1, description="VLLM_CPU_KVCACHE_SPACE; unset lets gpu_memory_utilization decide.")
    cpu_omp_threads_bind: str = Field(
        "auto", description="VLLM_CPU_OMP_THREADS_BIND: auto, nobind or a core list "
        "(chosen by bench/cpu_tuning.py; docs/benchmarks.md).")
    cpu_reserved_cpus: int = Field(
        0, ge=0, description="VLLM_CPU_NUM_OF_RESERVED_CPU: cores kept from the engine's OMP "
        "threads. vLLM's default reserves one for the front end, which leaves a 2-core "
        "machine one core to decode on (docs/benchmarks.md).")


class ApiKeyEntry(NamedTuple):
    """One ``serve.api_keys`` entry: the key, its collections and its groups (None: all)."""

    key: str
    collections: frozenset[str] | None
    groups: frozenset[str] | None


def parse_api_key(entry: str) -> ApiKeyEntry:
    """``KEY`` (every collection, every document), ``KEY@docs+faq`` (only those
    collections), ``KEY#hr+finance`` (only documents of those access groups and public
    ones), or both: ``KEY@docs#hr``."""
    head, hash_sep, group_part = entry.partition("#")
    key, sep, scope = head.partition("@")
    if not key.strip():
        raise ValueError("an API key entry has no key before '@' or '#'")
    names = None
    if sep:
        names = frozenset(n.strip() for n in scope.split("+") if n.strip())
        if not names:
            raise ValueError("an API key has '@' but names no collection")
        bad = sorted(n for n in names if not re.match(COLLECTION_PATTERN, n))
        if bad:
            raise ValueError(f"an API key's scope names invalid collection(s) {', '.join(bad)}: "
                             "use 1-64 lowercase letters, digits, '-' or '_'")
    groups = None
    if hash_sep:
        groups = frozenset(g.strip() for g in group_part.split("+") if g.strip())
        if not groups:
            raise ValueError("an API key has '#' but names no group")
        check_groups(groups, "an API key")
    return ApiKeyEntry(key, names, groups)


class ServeSettings(StrictModel):
    """The HTTP side: where it listens and how it sheds load."""

    host: str = Field("127.0.0.1", description="Address the Serve proxy listens on.")
    documents_dir: Path | None = Field(
        None, description="The indexed folder whose files /v1/files/{source} serves (behind "
        "the API-key check), so the question page opens a cited PDF at its page; unset "
        "serves none.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the Serve proxy.")
    max_running_requests: int = Field(
        64, ge=1, description="Requests the API replica runs at once (its admission control).")
    max_queued_requests: int = Field(
        64, ge=0, description="Requests waiting beyond that; more are answered 503 at once.")
    retry_after_s: float = Field(2, ge=0, description="Retry-After sent with a 503.")
    api_num_cpus: float = Field(
        0.25, ge=0, description="Logical CPUs Ray reserves for the API replica (with the "
        "retriever's and the LLM's, this fits a 2-core Ray started by `serve run`).")
    api_replicas: int = Field(
        1, ge=1, description="API replicas; each runs its own admission control "
        "(max_running_requests), the per-key rate limit is shared by all.")
    proxy_location: Literal["EveryNode", "HeadOnly"] = Field(
        "EveryNode", description="Where Serve runs HTTP proxies: every node (Serve's default, "
        "behind a load balancer), or the head only (several nodes on one machine share its "
        "address, so only one proxy may bind the port).")
    api_keys: list[SecretStr] = Field(
        [], description="Bearer keys every route but /healthz requires; empty: no auth. "
        "Also LLAMA_RAG_API_KEYS=key1,key2.")

    @field_validator("api_keys")
    @classmethod
    def _scopes_are_collections(cls, keys: list[SecretStr]) -> list[SecretStr]:
        """Checked at load, not first when a replica starts (the key itself never shown)."""
        for key in keys:
            parse_api_key(key.get_secret_value())
        return keys

    rate_limit_per_minute: int = Field(
        120, ge=0, description="Requests per API key per minute (with api_keys set); 0: off.")
    rate_limit_burst: int = Field(20, ge=1, description="Requests a key may send at once.")
    default_max_tokens: int = Field(
        512, ge=1, description="max_tokens of an OpenAI-route request that sets none (vLLM "
        "would generate until the context ends: minutes on a CPU).")
    max_tokens_limit: int = Field(
        4096, ge=1, description="Largest max_tokens an OpenAI-route request may ask (400 above).")
    llm_stall_timeout_s: float = Field(
        30, gt=0, description="Longest wait for the LLM's next streamed chunk (the first "
        "included): past it the request gets 503 + Retry-After (an SSE error event once "
        "streaming) and new LLM requests are refused at once until the LLM answers again.")
    llm_answer_timeout_s: float = Field(
        300, gt=0, description="Longest wait for a whole non-streamed LLM answer, likewise.")
    llm_probe_interval_s: float = Field(
        2, gt=0, description="While the LLM (or the retriever) is down, how often the API "
        "probes its health.")
    retrieval_timeout_s: float = Field(
        60, gt=0, description="Longest wait for a call to the retrieval deployment (a search, "
        "an extractive answer): past it the request gets 503 + Retry-After and new calls are "
        "refused at once until a retriever replica answers again.")


AnswerMode = Literal["generate", "extractive"]
AnswerModeSetting = Literal["auto", "generate", "extractive"]


class QASettings(StrictModel):
    """Grounded answers: how much context the model sees and when to refuse."""

    k: int = Field(4, ge=1, le=20, description="Chunks quoted to the model per question.")
    min_score: float = Field(
        0.35, ge=-1, le=1,
        description="Cosine similarity the best chunk needs; below it the answer is "
        "`answerable: false` without asking the model.")
    min_passage_score: float = Field(
        0.45, ge=-1, le=2,
        description="Extractive answers: the score (likeness to the question, of the passage "
        "and of the heading or question above it) the best passage needs; below it the "
        "answer is `answerable: false` (docs/benchmarks.md).")
    passage_scorer: str | None = Field(
        None, description="Name of a passage scorer in the adapter registry (`llama-rag "
        "tune` publishes one, tuned on the corpus): extractive answers are chosen with it. "
        "Unset: the untuned engine.")
    context_chars: int = Field(
        1200, ge=100, description="Characters of each chunk quoted to the model.")
    max_question_chars: int = Field(
        2000, ge=10, description="Longer questions are refused with 413.")
    max_tokens: int = Field(256, ge=1, description="Default answer length in tokens.")
    temperature: float = Field(0.0, ge=0, le=2, description="Default sampling temperature.")
    frequency_penalty: float = Field(
        0.8, ge=-2, le=2,
        description="Discourages the loops small models fall into at temperature 0.")
    answer_mode: AnswerModeSetting = Field(
        "auto", description="generate: the LLM writes the answer from the quoted documents; "
        "extractive: the answer is the quoted sentence that answers the question, verbatim "
        "with its [n] (qa.extractive; no LLM call); auto: extractive for a model under "
        "qa.extractive_below_params parameters, else generate. On the bundled 135M model "
        "extractive scored token-F1 0.72 against 0.07 generated (docs/evaluation.md).")
    extractive_below_params: float = Field(
        3e9, ge=0, description="auto answer mode: models with fewer parameters answer "
        "extractively (a 135M-3B model paraphrases documentation into errors).")
    chat_model_id: str = Field(
        "rag", pattern=r"^[A-Za-z0-9._-]*$",
        description="The model id under which /v1/chat/completions answers from the documents "
        "(rag:<collection> for a named collection), listed in /v1/models; empty: off.")
    attribution_min_similarity: float = Field(
        0.3, ge=-1, le=1,
        description="When the model writes no [n] markers, a sentence is marked with its "
        "most similar quoted document if their cosine similarity reaches this.")
    reload_interval_s: float = Field(
        2.0, gt=0, description="How often the retriever checks CURRENT for a new version.")


RetrievalMode = Literal["dense", "lexical", "hybrid"]
RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)


class RetrievalSettings(StrictModel):
    mode: RetrievalMode = Field(
        "hybrid", description="dense (MiniLM + FAISS), lexical (BM25) or hybrid (both, fused "
        "by reciprocal rank). hybrid won on eval/python-docs-qa.jsonl: see docs/retrieval.md.")
    rrf_k: int = Field(30, ge=1, description="Reciprocal-rank fusion constant: 1 / (rrf_k + rank); "
                       "10-30 tied on the dev set, the textbook 60 lost one question.")
    lexical_weight: float = Field(
        1.05, gt=0, description="Weight of the BM25 ranking in hybrid fusion (dense is 1): "
        "a little over 1 lets an exact identifier's page win a tie with a paraphrase, and no "
        "more, so a page BM25 ranks first on common words does not outrank dense's second "
        "(docs/retrieval.md).")
    document_weight: float = Field(
        0.3, ge=0, description="Share of the likeness of a chunk's document opening (its "
        "title, NAME line or summary) added to the chunk's own in dense ranking: a chunk deep "
        "in a page rarely says what the page is for (docs/retrieval.md). 0 turns it off.")
    candidates: int = Field(
        50, ge=1, description="Rows each search hands to fusion, MMR or reranking (>= k).")
    mmr: bool = Field(False, description="Maximal marginal relevance: diversify the k hits "
                      "so one long page does not fill every slot.")
    mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR: 1 = relevance only, 0 = diversity only.")
    num_cpus: float = Field(
        0.25, ge=0, description="Logical CPUs Ray reserves for the retrieval replica.")
    embed_threads: int | None = Field(
        1, ge=1,
        description="Threads of the retriever's embedder (queries, citation attribution): "
        "short texts gain little from more, and more would preempt the LLM engine's "
        "threads on the same cores. Unset: one per core.")
    reranker: str | None = Field(
        None, description="A sentence-transformers cross-encoder (directory or hub name) that "
        "re-scores the candidates; off by default (slow on the CPU).")
    rerank_candidates: int = Field(20, ge=1, description="How many fused candidates are reranked.")


class PrivacySettings(StrictModel):
    mask_pii: bool = Field(
        False, description="Replace emails, phone numbers, card numbers and IBANs with "
        "[EMAIL], [PHONE], [CARD], [IBAN] in indexed text, logs and answers.")


GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
PUBLIC_GROUP = "public"  # the group every caller has: documents labeled so are open to all


def check_groups(names: list[str] | frozenset[str], where: str) -> None:
    bad = sorted(n for n in names if not re.match(GROUP_PATTERN, n))
    if bad:
        raise ValueError(f"{where} names invalid group(s) {', '.join(map(repr, bad))}: use 1-64 "
                         "letters, digits, '_', '.', ':' or '-', starting with a letter or digit")


def groups_flag(value: str | None, flag: str = "--groups") -> frozenset[str] | None:
    """A ``--groups hr,finance`` flag: None (no flag: every document), or the groups
    (an empty value: public documents only)."""
    if value is None:
        return None
    names = frozenset(n for n in value.replace("+", ",").replace(" ", ",").split(",") if n)
    check_groups(names, flag)
    return names


class JwtSettings(StrictModel):
    """Bearer JWTs from an identity provider (signature, issuer, audience, expiry checked)."""

    jwks_url: str | None = Field(None, description="The provider's JWKS endpoint (https).")
    jwks_file: Path | None = Field(None, description="A JWKS JSON file (instead of the URL).")
    issuer: str = Field(..., description="Required `iss` claim.")
    audience: str = Field(..., description="Required `aud` claim.")
    groups_claim: str = Field(
        "groups", description="Claim holding the caller's groups (a list or a space/comma "
        "separated string); a dotted path reaches into objects (realm_access.roles).")
    algorithms: list[str] = Field(["RS256", "ES256"], description="Accepted signing algorithms.")
    leeway_s: float = Field(30, ge=0, description="Clock skew allowed on exp/nbf/iat.")

    @model_validator(mode="after")
    def _one_key_source(self) -> "JwtSettings":
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError("set exactly one of access.jwt.jwks_url and access.jwt.jwks_file")
        if any(a.upper().startswith("HS") or a.lower() == "none" for a in self.algorithms):
            raise ValueError("access.jwt.algorithms takes public-key algorithms only "
                             "(RS*, PS*, ES*, EdDSA)")
        return self


class AccessSettings(StrictModel):
    """Who may read which document (docs/security.md): labels at ingest, identity at serve."""

    rules: dict[str, list[str]] = Field(
        {}, description="Glob over a file's source path -> its groups; a file matched by "
        "several rules gets the union. Sidecars, front matter and folder .access files "
        "take precedence.")
    unlabeled: Literal["public", "none"] = Field(
        "public", description="Groups of a document no label reaches: public (everyone may "
        "read it) or none (only callers without group limits: local use, unscoped keys).")
    jwt: JwtSettings | None = Field(None, description="Accept bearer JWTs besides API keys.")
    audit_log: Path | None = Field(
        None, description="JSONL file getting one line per answer and search (who, which "
        "chunks, which version); unset: no audit trail.")

    @field_validator("rules")
    @classmethod
    def _valid_groups(cls, rules: dict[str, list[str]]) -> dict[str, list[str]]:
        for pattern, groups in rules.items():
            check_groups(groups, f"access.rules[{pattern!r}]")
        return rules


class AdapterSettings(StrictModel):
    """Fine-tuned adapters (LoRA and embedding heads) and where their training runs keep state."""

    dir: Annotated[str, BeforeValidator(_location)] = Field(
        "adapters",
        description="Adapter registry (NAME/CURRENT + NAME/versions/), or a filesystem URI "
        "shared by a cluster's nodes, as index.dir.")
    cache_dir: Path = Field(
        Path("~/.cache/llama-rag/adapter-cache"),
        description="Where versions of a URI registry are copied on this machine.")
    checkpoints: Annotated[str, BeforeValidator(_location)] = Field(
        "~/.cache/llama-rag/finetune-runs",
        description="Ray Train storage path for fine-tuning checkpoints (a folder or a URI); "
        "a run re-started with the same name resumes from here.")
    max_lora_rank: int = Field(16, ge=1, description="Largest LoRA rank vLLM is started for.")
    max_loras: int = Field(4, ge=1, description="Adapters one vLLM replica holds at once.")
    merge_for_jobs: Literal["auto", "always", "never"] = Field(
        "auto", description="classify --adapter with a LoRA adapter: run a copy of the model "
        "with the adapter merged in (auto: on CPUs, where vLLM's LoRA kernels are ~20x "
        "slower on prefill), or vLLM's LoRA.")
    serve: bool | None = Field(
        None, description="Serve LoRA adapters as <model_id>:<NAME> (vLLM with LoRA on). "
        "Unset: on when the registry holds a LoRA adapter when the app starts.")


class Settings(BaseSettings):
    """Everything configurable, one object, passed down explicitly."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_assignment=True
    )

    home: Path = Field(
        Path("~/.cache/llama-rag"), description="Where prepared models live ($LLAMA_RAG_HOME)."
    )
    models: ModelSettings = Field(default_factory=ModelSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    index: IndexSettings = Field(default_factory=IndexSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    ray: RaySettings = Field(default_factory=RaySettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    qa: QASettings = Field(default_factory=QASettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    adapters: AdapterSettings = Field(default_factory=AdapterSettings)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        """An old key is an error that names its new one, not a silent default."""
        if isinstance(data, dict):
            for old, new in RENAMED.items():
                section, key = old.split(".")
                if isinstance(data.get(section), dict) and key in data[section]:
                    raise ValueError(f"setting {old} was renamed {new} (environment: "
                                     f"{ENV_PREFIX}{new.upper().replace('.', '__')})")
        return data

    @model_validator(mode="after")
    def _expand_home(self) -> "Settings":
        object.__setattr__(self, "home", Path(os.path.expanduser(str(self.home))))
        return self

    @model_validator(mode="after")
    def _gpu_embedding_is_torch(self) -> "Settings":
        """ONNX Runtime and OpenVINO run here on the CPU: a GPU asked for would sit idle."""
        gpu = self.models.embed_device == "cuda" or self.ingest.embed_num_gpus > 0
        if gpu and self.models.embed_backend != "torch":
            raise ValueError(
                f"models.embed_backend {self.models.embed_backend} runs on the CPU; to embed "
                "on a GPU (models.embed_device: cuda or ingest.embed_num_gpus) set "
                "models.embed_backend: torch (same vectors as the float32 CPU backends)")
        return self


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}", param="config") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}", param="config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings", param="config")
    return data


def _describe(exc: ValidationError, origin: str) -> ConfigError:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "settings"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown setting"
    got = first.get("input")
    secret = "api_keys" in field  # a rejected key is never echoed
    shown = "" if isinstance(got, dict) or got is None or secret else f" (got {got!r})"
    more = len(exc.errors()) - 1
    extra = f"; and {more} more problem(s)" if more else ""
    return ConfigError(f"invalid setting {field}: {msg}{shown} [{origin}]{extra}", param=field)


def load_settings(config: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Build the effective settings: defaults < YAML < environment < ``overrides`` (CLI flags)."""
    file_values = _read_yaml(config) if config else {}

    class _WithFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            from pydantic_settings import InitSettingsSource

            return init_settings, env_settings, InitSettingsSource(settings_cls, file_values)

    overrides = dict(overrides or {})
    if os.environ.get(API_KEYS_ENV) and overrides.get("serve.api_keys") is None:
        overrides["serve.api_keys"] = [k.strip() for k in os.environ[API_KEYS_ENV].split(",")
                                       if k.strip()]
    origin = ", ".join(filter(None, [str(config) if config else "", "environment", "flags"]))
    try:
        loaded = _WithFile(**_nest(overrides))
    except ValidationError as exc:
        raise _describe(exc, origin) from None
    return Settings.model_construct(**{k: getattr(loaded, k) for k in Settings.model_fields})


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Turn {"index.dir": x} into {"index": {"dir": x}}, dropping None (flag not given)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def dump_settings(settings: Settings) -> str:
    """The effective configuration as YAML, loadable again with ``--config``."""
    return yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
