"""The project's exception types, each tied once to a CLI exit code and an HTTP status.

Domain code raises these; only the CLI and the HTTP routers translate them, so a
user sees one clear message and never a stack trace.
"""

from __future__ import annotations


class LlamaRagError(Exception):
    """Base of every error a user is meant to read."""

    exit_code: int = 1
    http_status: int = 500
    type: str = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidInputError(LlamaRagError):
    """The caller asked for something malformed: fix the input and retry."""

    exit_code = 2
    http_status = 400
    type = "invalid_request_error"


class QuestionTooLongError(InvalidInputError):
    """The question is longer than ``qa.max_question_chars``."""

    http_status = 413


class ConfigError(InvalidInputError):
    """A setting has an invalid value; the message names the field."""

    type = "config_error"


class NotFoundError(LlamaRagError):
    """A named thing (path, index, model) does not exist."""

    exit_code = 2
    http_status = 404
    type = "not_found_error"


class EmptyCorpusError(InvalidInputError):
    """Nothing indexable was found, so no version is published."""


class EmbedderMismatchError(InvalidInputError):
    """The index was built with another embedder than the one configured."""

    http_status = 409
    type = "embedder_mismatch"


class OutputLockedError(LlamaRagError):
    """Another classification job is writing the same output folder."""

    exit_code = 3
    http_status = 409
    type = "output_locked"


class IndexLockedError(LlamaRagError):
    """Another indexer holds the index directory's lock."""

    exit_code = 3
    http_status = 409
    type = "index_locked"


class ModelSetupError(LlamaRagError):
    """A model is not installed or not prepared; the message says the one-line fix."""

    exit_code = 2
    http_status = 503
    type = "model_setup_error"


class LoadError(LlamaRagError):
    """One file could not be turned into a document; recorded per file, never fatal."""

    exit_code = 2
    http_status = 422
    type = "unreadable_document"


class IndexUnavailableError(LlamaRagError):
    """No index version is published (yet) where the service looks."""

    exit_code = 2
    http_status = 503
    type = "index_unavailable"


class AuthError(LlamaRagError):
    """No API key was sent where one is required."""

    exit_code = 2
    http_status = 401
    type = "authentication_error"


class ForbiddenError(AuthError):
    """An API key was sent but it is not one of the configured keys."""

    http_status = 403
    type = "permission_error"


class RetryableError(LlamaRagError):
    """A refusal to retry after ``retry_after`` seconds (the API sends it as Retry-After)."""

    default_retry_after = 10.0

    def __init__(self, message: str, *, retry_after: float | None = None,
                 param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class RateLimitedError(RetryableError):
    """Too many requests for one key; retry after ``retry_after`` seconds."""

    exit_code = 4
    http_status = 429
    type = "rate_limit_error"


class ModelUnavailableError(RetryableError):
    """No LLM replica answered (killed, out of memory, restarting)."""

    http_status = 503
    type = "model_unavailable"


class RetrievalUnavailableError(RetryableError):
    """The retrieval deployment's replica died or could not take the call (restarting,
    its node lost, backpressure): nothing was answered, so the request can be retried."""

    http_status = 503
    type = "retrieval_unavailable"


class OverloadedError(RetryableError):
    """More requests than the server runs and queues."""

    http_status = 503
    type = "overloaded_error"
    default_retry_after = 2.0


class UpstreamError(LlamaRagError):
    """The LLM deployment refused or failed a request; carries its status (e.g. 400)."""

    type = "upstream_error"

    def __init__(self, message: str, *, status: int = 502) -> None:
        super().__init__(message)
        self.http_status = status if 400 <= status < 600 else 502
        self.type = "invalid_request_error" if 400 <= self.http_status < 500 else self.type


def error_types() -> frozenset[str]:
    """Every ``type`` our errors carry (an error body with one of these is already ours)."""
    found, todo = set(), [LlamaRagError]
    while todo:
        cls = todo.pop()
        found.add(cls.type)
        todo += cls.__subclasses__()
    return frozenset(found | {"upstream_error", "invalid_request_error"})


class GateRefusedError(LlamaRagError):
    """An eval gate kept the new index version or adapter from being published."""

    exit_code = 5
    http_status = 409
    type = "gate_refused"
