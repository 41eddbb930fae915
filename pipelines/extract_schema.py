"""The extraction job's schema: loaded from a JSON Schema file or a pydantic model, and
each model output checked against it.

Guided decoding (vLLM structured outputs) keeps the model's tokens inside the
schema's grammar, but not every keyword is enforced by every grammar backend
(formats, numeric bounds), and an output cut off at the token limit is no JSON at
all, so each output is parsed and validated again here with ``jsonschema``; a row
whose output fails goes to ``errors.jsonl`` with the reason, never to the results.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import jsonschema

from llama_rag.errors import InvalidInputError


def load_schema(value: str) -> dict[str, Any]:
    """``value`` is a ``.json`` file holding a JSON Schema, or ``package.module:Model``
    naming a pydantic model; the schema must describe an object with properties."""
    if ":" in value and not Path(value).exists():
        schema = _from_model(value)
    else:
        path = Path(value)
        if not path.is_file():
            raise InvalidInputError(f"--schema {value}: no such file (give a JSON Schema file "
                                    "or package.module:Model)", param="schema")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidInputError(f"--schema {value}: not JSON: {exc}", param="schema") from None
    return check_schema(schema, value)


def _from_model(value: str) -> dict[str, Any]:
    from pydantic import BaseModel

    module_name, _, attr = value.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise InvalidInputError(f"--schema {value}: cannot import it: {exc}",
                                param="schema") from None
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        raise InvalidInputError(f"--schema {value} is not a pydantic model class",
                                param="schema")
    return target.model_json_schema()


def check_schema(schema: Any, where: str = "schema") -> dict[str, Any]:
    """A valid JSON Schema of an object with named properties, or InvalidInputError."""
    if not isinstance(schema, dict):
        raise InvalidInputError(f"--schema {where}: a JSON Schema is an object", param="schema")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InvalidInputError(f"--schema {where}: not a valid JSON Schema: {exc.message}",
                                param="schema") from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict) \
            or not schema["properties"]:
        raise InvalidInputError(f"--schema {where}: the schema must be an object with "
                                "properties (\"type\": \"object\", \"properties\": {...}): each "
                                "row's output is one such object", param="schema")
    return schema


def fields(schema: dict[str, Any]) -> list[str]:
    """The top-level fields, in the schema's order (the unit of field-level accuracy)."""
    return list(schema["properties"])


class Checker:
    """Parses and validates one output against the schema (the validator built once)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.validator = jsonschema.validators.validator_for(schema)(schema)

    def check(self, raw: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the object, None) or (None, why it fails)."""
        try:
            value = json.loads(raw)
        except ValueError as exc:
            return None, f"output is not JSON ({exc.msg} at {exc.pos}): {raw[:100]!r}"
        error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "the object"
            return None, f"output fails the schema at {where}: {error.message[:200]}"
        return value, None


def parse_gold(value: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """A gold cell: one JSON object, or (None, why not)."""
    if value is None or not value.strip():
        return None, None
    try:
        gold = json.loads(value)
    except ValueError:
        return None, "gold is not JSON"
    return (gold, None) if isinstance(gold, dict) else (None, "gold is not a JSON object")
