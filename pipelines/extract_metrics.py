"""Field-level accuracy of extracted objects against a gold column.

A field is right when the extracted value equals the gold one after the forgiving
comparison a person would apply: strings case- and space-insensitive, numbers by
value (``"3"`` and ``3.0`` agree), lists as sets, and a missing field the same as
``null``. Rows whose output failed the schema count as wrong on every field, so the
figure is over every row with a gold object, not only the ones that parsed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel

_SPACE = re.compile(r"\s+")


class FieldScore(BaseModel):
    accuracy: float
    gold_present: int  # rows whose gold gives this field a non-null value


class ExtractMetrics(BaseModel):
    evaluated: int  # rows with a gold object (failed outputs included)
    failed: int  # of those, rows whose output failed the schema (all fields wrong)
    field_accuracy: float  # over every (row, field)
    exact_match: float  # every field right
    per_field: dict[str, FieldScore]


def normalised(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = _SPACE.sub(" ", value).strip().casefold()
        try:
            return float(text)
        except ValueError:
            return text or None
    if isinstance(value, list):
        items = [normalised(v) for v in value]
        return sorted((json.dumps(v, sort_keys=True) for v in items)) or None
    if isinstance(value, dict):
        return {k: normalised(v) for k, v in sorted(value.items()) if v is not None} or None
    return value


def same(predicted: Any, gold: Any) -> bool:
    return normalised(predicted) == normalised(gold)


def extract_metrics(predicted: list[dict[str, Any] | None], gold: list[dict[str, Any]],
                    fields: list[str]) -> ExtractMetrics:
    """``predicted[i]`` is row i's object (None: its output failed), ``gold[i]`` its gold."""
    right = {f: 0 for f in fields}
    present = {f: 0 for f in fields}
    exact = failed = 0
    for pred, want in zip(predicted, gold):
        failed += pred is None
        hits = [pred is not None and same(pred.get(f), want.get(f)) for f in fields]
        for f, hit in zip(fields, hits):
            right[f] += hit
            present[f] += want.get(f) is not None
        exact += all(hits)
    n = len(gold)
    return ExtractMetrics(
        evaluated=n, failed=failed,
        field_accuracy=round(sum(right.values()) / (n * len(fields)), 4) if n and fields else 0.0,
        exact_match=round(exact / n, 4) if n else 0.0,
        per_field={f: FieldScore(accuracy=round(right[f] / n, 4) if n else 0.0,
                                 gold_present=present[f]) for f in fields})
