"""The classification job's labels and few-shot examples, read and checked (not guessed).

Shared by the classification job and the fine-tuning job's data (the same labels file
means the same labels in both).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from llama_rag.errors import InvalidInputError
from llama_rag.prompts import Example, LabelSet


def load_labels(labels: str | None, labels_file: Path | None) -> LabelSet:
    """Labels from ``a,b,c`` or a YAML mapping of label: description; checked, not guessed."""
    if bool(labels) == bool(labels_file):
        raise InvalidInputError("give exactly one of --labels or --labels-file", param="labels")
    descriptions: dict[str, str] = {}
    if labels_file:
        try:
            data = yaml.safe_load(Path(labels_file).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidInputError(f"--labels-file {labels_file}: {exc}", param="labels") from None
        if isinstance(data, list):
            data = {str(k): "" for k in data}
        if not isinstance(data, dict):
            raise InvalidInputError(f"--labels-file {labels_file} must map label: description",
                                    param="labels")
        names = [str(k).strip() for k in data]
        descriptions = {str(k).strip(): str(v or "").strip() for k, v in data.items()}
    else:
        names = [p.strip() for p in str(labels).split(",")]
    if any(not n for n in names):
        raise InvalidInputError("labels must not be empty (check for a stray comma)",
                                param="labels")
    if len(names) < 2:
        raise InvalidInputError("give at least two labels", param="labels")
    seen: dict[str, str] = {}
    for n in names:
        if n.lower() in seen:
            raise InvalidInputError(f"duplicate label {n!r}", param="labels")
        seen[n.lower()] = n
    return LabelSet(labels=names, descriptions={k: v for k, v in descriptions.items() if v})


def load_examples(path: Path | None, labels: LabelSet) -> list[Example]:
    if not path:
        return []
    from llama_rag.jsonl import read_models

    examples = []
    for n, ex in read_models(path, Example, "--examples", "examples"):
        if ex.label not in labels.labels:
            raise InvalidInputError(f"--examples {path}:{n}: label {ex.label!r} is not one of "
                                    f"the labels", param="examples")
        examples.append(ex)
    return examples
