"""The one JSONL parser: every line's outcome, blank lines skipped, numbering kept."""

import pytest

from llama_rag.errors import InvalidInputError
from llama_rag.jsonl import read_models, records
from llama_rag.prompts import Example


def test_each_line_is_an_object_or_a_reason():
    lines = ['{"a": 1}', "", "{broken", "[1, 2]", b'{"b": 2}', b"\xff\xfe"]
    got = [(n, r, e and e.split(" (")[0]) for n, r, e in records(lines)]
    assert got == [(1, {"a": 1}, None), (3, None, "invalid JSON"), (4, None, "not a JSON object"),
                   (5, {"b": 2}, None), (6, None, "invalid JSON")]


def test_model_files_fail_whole_at_the_first_bad_line(tmp_path):
    path = tmp_path / "ex.jsonl"
    path.write_text('{"text": "x", "label": "a"}\n\n{"text": ""}\n')
    with pytest.raises(InvalidInputError, match=r"ex.jsonl:3: .* at text"):
        read_models(path, Example, "--examples", "examples")
