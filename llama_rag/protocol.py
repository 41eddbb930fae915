"""The request and response models of the HTTP API, the CLI and the Python client.

One module, at the bottom of the layers, so the search core (indexing.retriever), the
Serve deployments (services/) and the clients all speak the same typed shapes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, field_validator

from llama_rag.config import COLLECTION_PATTERN, DEFAULT_COLLECTION, AnswerMode

from llama_rag.config import RetrievalMode as Mode

MAX_TURNS = 40
MAX_QUERY_CHARS = 4000  # a search query; a follow-up's standalone query is cut to it


class Turn(BaseModel):
    """One earlier message of the conversation, as the client keeps it."""

    model_config = {"extra": "forbid"}

    role: Literal["user", "assistant"]
    content: str = Field(..., max_length=8000)


class Access(BaseModel):
    """Who asks, as the edge established it (services.auth): what the retriever may show.

    ``groups`` None reads every document (no auth, an unscoped key, the local CLI
    without ``--groups``); a set reads documents of those groups and public ones
    (indexing.access). Never taken from a request body.
    """

    model_config = {"frozen": True}

    subject: str = "local"  # a key's digest prefix or a token's `sub`: for the audit trail
    groups: frozenset[str] | None = None
    collections: frozenset[str] | None = None


class Hit(BaseModel):
    """One search result, in the shape the CLI and the API return."""

    rank: int
    score: float
    source: str
    title: str
    text: str
    chunk_id: str
    heading: list[str]
    start: int  # offsets into the document's extracted text (before PII masking)
    end: int
    page: int | None = Field(None, description="The page the chunk starts on (PDF, slides, "
                             "scans); none for unpaged files.")
    page_breaks: list[int] = Field(default_factory=list, description="Offsets into `text` "
                                   "where each further page begins (a chunk across pages).")

    def page_at(self, offset: int) -> int | None:
        """The page of the chunk's text at ``offset``."""
        if self.page is None:
            return None
        return self.page + sum(1 for b in self.page_breaks if b <= offset)


Scalar = str | int | float | bool


class Condition(BaseModel):
    """Operators on one metadata field; every given one must hold. Ranges compare numbers
    as numbers and ISO 8601 dates as dates; a list-valued field matches when any of its
    elements does."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    eq: Scalar | None = None
    in_: list[Scalar] | None = Field(None, alias="in", max_length=100)
    gt: Scalar | None = None
    gte: Scalar | None = None
    lt: Scalar | None = None
    lte: Scalar | None = None


class Filters(BaseModel):
    """Metadata filters; every given one must hold."""

    model_config = {"extra": "forbid"}

    source_prefix: str | None = Field(
        None, max_length=1000, description="Only sources starting with this (e.g. library/).")
    file_type: list[str] | None = Field(
        None, max_length=20, description="Only these suffixes, e.g. ['html', 'pdf'].")

    metadata: dict[str, Scalar | Condition] | None = Field(
        None, max_length=20, description="Stored metadata fields (front matter, document "
        "properties, e-mail headers, `modified`: the file's date) -> a value, or operators "
        "{eq, in, gt, gte, lt, lte}. An unknown field is a 400.")

    @field_validator("file_type")
    @classmethod
    def _normalise(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.lower().lstrip(".") for v in value]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]


Collection = Annotated[str, Field(pattern=COLLECTION_PATTERN,
                                  description="A named index (default: the main one).")]


class SearchRequest(BaseModel):
    model_config = {"extra": "forbid"}

    query: NonBlank = Field(..., min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(5, ge=1, le=100)
    filters: Filters | None = None
    collection: Collection | None = None
    mode: Mode | None = Field(None, description="dense, lexical or hybrid (default: retrieval.mode).")
    mmr: bool | None = Field(None, description="Diversify the hits (default: retrieval.mmr).")


class SearchResponse(BaseModel):
    object: Literal["search.result"] = "search.result"
    version: str
    collection: str = DEFAULT_COLLECTION
    mode: Mode = "dense"
    hits: list[Hit]
    retrieve_ms: float


class IndexSummary(BaseModel):
    """What the served index holds (the web page's footer, `GET /v1/index`)."""

    version: str
    created_at: str
    documents: int
    chunks: int
    failed_files: int
    documents_served: bool = Field(False, description="Citations' files can be opened at "
                                   "/v1/files/{source} (serve.documents_dir).")


class AskRequest(BaseModel):
    model_config = {"extra": "forbid"}

    question: NonBlank = Field(..., min_length=1)
    k: int | None = Field(None, ge=1, le=20, description="Chunks to quote (default qa.k).")
    filters: Filters | None = None
    collection: Collection | None = None
    mode: Mode | None = Field(None, description="Retrieval mode (default: retrieval.mode).")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    temperature: float | None = Field(None, ge=0, le=2)
    model: str | None = Field(None, max_length=200, description="The model id, or "
                              "<model_id>:<adapter> for a fine-tuned LoRA adapter (/v1/models).")
    answer_mode: AnswerMode | None = Field(
        None, description="generate (the LLM writes the answer) or extractive (the answering "
        "sentence quoted verbatim); default: the server's qa.answer_mode, or generate when "
        "`model` is given.")
    history: list[Turn] = Field(
        [], max_length=MAX_TURNS, description="The conversation so far (the client keeps it: "
        "the server is stateless); the question is retrieved with a standalone query built "
        "from it (qa.conversation).")


class Citation(BaseModel):
    n: int
    source: str
    title: str
    snippet: str
    score: float
    chunk_id: str
    page: int | None = Field(None, description="The page the quoted text is on (PDF, slides, "
                             "scans); none for unpaged files.")


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Timings(BaseModel):
    retrieve_ms: float
    generate_ms: float


class AskResponse(BaseModel):
    object: Literal["answer"] = "answer"
    answer: str
    query: str | None = Field(None, description="What was retrieved when it is not the question "
                              "itself: the standalone query of a follow-up.")
    answerable: bool
    citations: list[Citation]
    citation_mode: Literal["model", "attributed", "quoted", "none"] = Field(
        "none", description="model: the LLM wrote the [n] markers; attributed: it wrote none, "
        "so each sentence was marked with its most similar quoted document; quoted: the "
        "answer is a sentence of document [n], verbatim (extractive answer mode).")
    usage: Usage
    timings: Timings
    index_version: str | None = None
    passage_scorer: str | None = Field(None, description="NAME@VERSION of the tuned passage "
                                       "scorer that chose the extractive answer (`llama-rag "
                                       "tune`); null: the untuned engine.")
