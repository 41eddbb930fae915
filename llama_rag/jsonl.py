"""JSON Lines: one parser for every JSONL input, and the reader for small model files.

``records`` parses line by line and reports each line's outcome; what a bad line
means is the caller's policy, stated where it is applied: a QA set or few-shot file
is refused whole at the first bad line (``read_models``), an indexed ``.jsonl`` is
listed as failed with its bad lines (indexing.loaders), a classification input gets
an error row per bad line so no id is lost (pipelines.classify_io).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from llama_rag.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)


class Line(NamedTuple):
    number: int  # 1-based, counting blank lines too
    record: dict[str, Any] | None  # the JSON object, or None when ``error`` says why
    error: str | None


def records(lines: Iterable[str | bytes]) -> Iterator[Line]:
    """Each non-blank line as a JSON object, or the reason it is not one."""
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield Line(number, None, f"invalid JSON ({exc.msg})")
            continue
        except UnicodeDecodeError:
            yield Line(number, None, "not valid UTF-8")
            continue
        if isinstance(value, dict):
            yield Line(number, value, None)
        else:
            yield Line(number, None, "not a JSON object")


def read_models(path: Path, model: type[M], what: str, param: str) -> list[tuple[int, M]]:
    """(line number, record) for each non-blank line of ``path``; the first bad line
    fails the whole file, naming the file and line."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InvalidInputError(f"cannot read {what} {path}: {reason}", param=param) from None
    out = []
    for line in records(lines):
        if line.error:
            raise InvalidInputError(f"{path}:{line.number}: {line.error}", param=param)
        try:
            out.append((line.number, model.model_validate(line.record)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InvalidInputError(f"{path}:{line.number}: {first['msg']}"
                                    + (f" at {where}" if where else ""), param=param) from None
    return out
