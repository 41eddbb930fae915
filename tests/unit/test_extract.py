"""Extraction job: schemas (file and pydantic), argument checks before work, validation of
each output, exactly-once bookkeeping, field-level metrics, and the extract fine-tuning task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from llama_rag.config import load_settings
from llama_rag.errors import InvalidInputError
from pipelines.extract import RESULT_SCHEMA, ExtractArgs, _metrics, _output, _write_batch, prepare
from pipelines.extract_metrics import extract_metrics, same
from pipelines.extract_schema import Checker, load_schema, parse_gold
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune_data import load

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "year": {"type": ["integer", "null"]},
    "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name", "year"], "additionalProperties": False}


class Package(__import__("pydantic").BaseModel):  # a pydantic model as --schema names one
    name: str
    year: int | None = None


def schema_file(tmp: Path, schema=SCHEMA) -> Path:
    path = tmp / "schema.json"
    path.write_text(json.dumps(schema))
    return path


def inputs(tmp: Path) -> Path:
    path = tmp / "rows.csv"
    path.write_text('id,text,gold\n1,"0ad, a strategy game from 2009","{""name"": ""0ad"", '
                    '""year"": 2009}"\n2,,\n3,perl is a language,"{""name"": ""perl""}"\n')
    return path


def args(tmp: Path, **kw) -> ExtractArgs:
    base = dict(input=str(inputs(tmp)), text_column="text", id_column="id", gold_column="gold",
                schema_ref=str(schema_file(tmp)), output=tmp / "out")
    return ExtractArgs(**{**base, **kw})


def test_schema_from_a_file_or_a_pydantic_model(tmp_path):
    assert load_schema(str(schema_file(tmp_path))) == SCHEMA
    model = load_schema("tests.unit.test_extract:Package")
    assert model["type"] == "object" and list(model["properties"]) == ["name", "year"]


@pytest.mark.parametrize("schema,words", [
    ("not json", "not JSON"),
    ({"type": "string"}, "must be an object with properties"),
    ({"type": "object", "properties": {"a": {"type": "no-such-type"}}}, "not a valid JSON Schema"),
    (["a"], "a JSON Schema is an object"),
])
def test_bad_schemas_are_refused_by_name(tmp_path, schema, words):
    path = tmp_path / "s.json"
    path.write_text(schema if isinstance(schema, str) else json.dumps(schema))
    with pytest.raises(InvalidInputError, match=words):
        load_schema(str(path))


def test_missing_schema_file_or_model_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no such file"):
        load_schema(str(tmp_path / "none.json"))
    with pytest.raises(InvalidInputError, match="cannot import"):
        load_schema("no_such_module:Model")
    with pytest.raises(InvalidInputError, match="not a pydantic model"):
        load_schema("tests.unit.test_extract:SCHEMA")


def test_each_output_is_parsed_and_validated():
    checker = Checker(SCHEMA)
    assert checker.check('{"name": "0ad", "year": 2009}') == ({"name": "0ad", "year": 2009}, None)
    value, why = checker.check('{"name": "0ad", "year": "2009"}')
    assert value is None and "at year" in why
    value, why = checker.check('{"name": "0a')
    assert value is None and why.startswith("output is not JSON")
    assert parse_gold("[1]") == (None, "gold is not a JSON object")


def test_bad_arguments_are_refused_before_any_work(tmp_path):
    with pytest.raises(InvalidInputError, match="--schema is required"):
        prepare(args(tmp_path, schema_ref=None), load_settings())
    with pytest.raises(InvalidInputError, match="'body' is not a column"):
        prepare(args(tmp_path, text_column="body"), load_settings())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not the output folder of the extract job"):
        prepare(args(tmp_path, output=tmp_path / "other"), load_settings())
    assert not (tmp_path / "out").exists()


def test_cli_exits_2_with_the_reason(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pipelines.extract", "--input",
                          str(inputs(tmp_path)), "--text-column", "text", "--output",
                          str(tmp_path / "o"), "--schema", str(tmp_path / "none.json")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no such file" in out.stderr
    assert "Traceback" not in out.stderr


def test_failed_outputs_go_to_errors_with_the_reason_and_each_id_once(tmp_path):
    a = args(tmp_path)
    prep = prepare(a, load_settings())
    out = _output(a)
    out.start(prep.job)
    batch = pa.Table.from_pylist([
        {"id": "1", "raw": '{"name": "0ad", "year": 2009}', "finish": "stop",
         "truncated": False, "gold": '{"name": "0ad", "year": 2009}'},
        {"id": "3", "raw": '{"name": "perl", "year": 19', "finish": "length",
         "truncated": False, "gold": '{"name": "perl"}'}])
    assert _write_batch(batch, out, Checker(SCHEMA), prep.spec, "parquet") == 2
    errors = out.merge_errors()
    assert errors[0]["id"] == "3" and "cut off at --max-output-tokens 256" in errors[0]["reason"]
    assert errors[0]["raw"].startswith('{"name": "perl"')
    assert out.done_ids() == {"1", "3"}
    results = out.results()
    assert results.schema == RESULT_SCHEMA and json.loads(results.column("data")[0].as_py())["year"] == 2009
    m, unreadable = _metrics(results, errors, prep.spec)
    assert unreadable == 0 and m.evaluated == 2 and m.failed == 1
    assert m.per_field["name"].accuracy == 0.5 and m.exact_match == 0.5


def test_field_comparison_forgives_case_space_number_form_and_list_order():
    assert same(" Perl  Language", "perl language") and same("3", 3.0)
    assert same(["b", "a"], ["a", "b"]) and same(None, "") and not same("perl", "python")
    m = extract_metrics([{"name": "A", "year": None}, None],
                        [{"name": "a"}, {"name": "b", "year": 1}], ["name", "year"])
    assert m.field_accuracy == 0.5 and m.exact_match == 0.5 and m.per_field["year"].gold_present == 1


def test_extract_fine_tuning_rows_are_objects_valid_against_the_schema(tmp_path):
    path = tmp_path / "train.csv"
    lines = ["text,obj"] + [f'row {i},"{{""name"": ""x{i}"", ""year"": {i}}}"' for i in range(12)] + [
        'bad,"{""name"": 5, ""year"": 1}"', 'notjson,"{oops"']
    path.write_text("\n".join(lines) + "\n")
    data = load(FinetuneArgs(input=[str(path)], name="ex", task="extract", text_column="text",
                             label_column="obj", schema_ref=str(schema_file(tmp_path)),
                             eval_fraction=0.2))
    assert data.spec.json_schema == SCHEMA
    assert data.spec.instructions.startswith("Extract the fields")
    assert len(data.train) + len(data.eval) == 12
    assert all(json.loads(r.target)["name"] == f"x{json.loads(r.target)['year']}"
               for r in data.train)
    reasons = {e["id"]: e["reason"] for e in data.errors}
    assert "fails the schema at name" in reasons["train.csv:13"]
    assert "not JSON" in reasons["train.csv:14"]
    with pytest.raises(InvalidInputError, match="needs --schema"):
        load(FinetuneArgs(input=[str(path)], name="ex", task="extract", text_column="text",
                          label_column="obj"))
    with pytest.raises(InvalidInputError, match="trains a classifier"):
        load(FinetuneArgs(input=[str(path)], name="ex", task="extract", method="auto",
                          text_column="text", label_column="obj",
                          schema_ref=str(schema_file(tmp_path))))


def test_extract_training_prompt_is_the_jobs_and_the_answer_is_the_object(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from llama_rag.model_files import resolve_llm
    from llama_rag.prompts import ExtractSpec, extract_messages
    from pipelines.finetune_data import Row, encode

    tok = AutoTokenizer.from_pretrained(resolve_llm(load_settings()).path)
    spec = ExtractSpec(json_schema=SCHEMA)
    target = '{"name": "0ad", "year": 2009}'
    prompt, answer = encode(tok, Row(id="1", text="0ad, a game from 2009", target=target),
                            spec, 256)
    assert tok.decode(prompt) == tok.apply_chat_template(
        extract_messages(spec, "0ad, a game from 2009"), tokenize=False, add_generation_prompt=True)
    assert tok.decode(answer) == target + "<|im_end|>"
