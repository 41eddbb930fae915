"""Reading small JSONL inputs (QA sets, few-shot examples) into pydantic models.

Errors name the file and line, and come as InvalidInputError (exit 2 / HTTP 400).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from llama_rag.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)


def read_models(path: Path, model: type[M], what: str, param: str) -> list[tuple[int, M]]:
    """(line number, record) for each non-blank line of ``path``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidInputError(f"cannot read {what} {path}: {reason}", param=param) from None
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((n, model.model_validate_json(line)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInputError(f"{path}:{n}: {first['msg']}" + (f" at {where}" if where else ""),
                                    param=param) from None
    return out
