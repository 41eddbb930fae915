"""Fine-tuning: argument and data checks (exit 2 before Ray), the answer-only loss, the
adapter registry and manifest, the embedding head, kNN examples."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from llama_rag.adapters import (AdapterStore, BaseModelRef, Manifest, check_base, check_name)
from cli.main import main
from llama_rag.config import load_settings
from llama_rag.errors import InvalidInputError, NotFoundError
from pipelines.finetune_args import FinetuneArgs
from pipelines.finetune import check_args, run_name
from pipelines.finetune_data import IGNORE, Row, collate, in_eval, load

ROWS = [("a fast game about ships", "games"), ("numerical solver for ODEs", "science"),
        ("", "games"), ("arcade shooter", "games"), ("physics data set", "science")] * 4


def write_csv(tmp: Path, rows=ROWS, header="text,label") -> Path:
    path = tmp / "train.csv"
    path.write_text(header + "\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    return path


def args(tmp: Path, **kw) -> FinetuneArgs:
    base = dict(input=[str(write_csv(tmp))], name="sections", text_column="text",
                label_column="label", labels="games,science", eval_fraction=0.3)
    return FinetuneArgs(**{**base, **kw})


def test_rows_split_stably_and_empty_text_is_listed_not_dropped(tmp_path):
    data = load(args(tmp_path))
    assert len(data.train) + len(data.eval) == 16
    assert len(data.errors) == 4 and {e["reason"] for e in data.errors} == {"empty text"}
    assert data.fingerprint["error_rows"] == 4
    again = load(args(tmp_path))
    assert [r.id for r in again.eval] == [r.id for r in data.eval]
    assert in_eval("x:1", 0.5, 0) == in_eval("x:1", 0.5, 0)
    assert data.spec.labels.labels == ["games", "science"] and data.spec.calibrate is False


@pytest.mark.parametrize("change,words", [
    (dict(text_column="body"), "--text-column 'body' is not a column"),
    (dict(label_column=None), "needs --label-column"),
    (dict(labels="games"), "at least two labels"),
    (dict(labels="games,net"), "missing from --labels: 'science'"),
    (dict(eval_fraction=0.01), "too few rows for evaluation"),
    (dict(task="instruct"), "needs --prompt-column"),
    (dict(method="embedding-head", task="instruct", prompt_column="text",
          response_column="label"), "use --task classify"),
])
def test_bad_data_or_flags_are_refused_before_ray(tmp_path, change, words):
    with pytest.raises(InvalidInputError, match=words):
        load(args(tmp_path, **change))


@pytest.mark.parametrize("change,words", [
    (dict(name="../x"), "not a plain name"),
    (dict(name="a b"), "not a plain name"),
    (dict(lora_rank=12), "vLLM serves ranks"),
    (dict(lora_rank=64), "above adapters.max_lora_rank"),
    (dict(target_modules=" , "), "--target-modules is empty"),
])
def test_bad_names_and_ranks_are_refused(tmp_path, change, words):
    with pytest.raises(InvalidInputError, match=words):
        check_args(args(tmp_path, **change), load_settings())


def test_cli_exits_2_with_the_reason(tmp_path):
    result = CliRunner().invoke(main, ["finetune", "--input", str(write_csv(tmp_path)),
                                       "--name", "x", "--text-column", "text",
                                       "--label-column", "label", "--labels", "games,net"])
    assert result.exit_code == 2, result.output
    assert "missing from --labels" in result.output and "Traceback" not in result.output


def test_same_command_same_run_changed_data_new_run(tmp_path):
    base = BaseModelRef(name="m", hash="h")
    a = args(tmp_path)
    name = run_name(a, load(a), base)
    assert name == run_name(a, load(a), base) and name.startswith("sections-")
    assert run_name(a.model_copy(update={"workers": 2}), load(a), base) == name  # same math
    assert run_name(a.model_copy(update={"placement_strategy": "STRICT_SPREAD"}), load(a),
                    base) == name  # where the workers run: the same run resumes
    assert run_name(a.model_copy(update={"learning_rate": 1e-3}), load(a), base) != name
    write_csv(tmp_path, ROWS + [("more", "games")])
    assert run_name(a, load(a), base) != name


def test_collate_puts_labels_on_the_answer_only_shifted_by_one():
    batch = collate([([1, 2, 3], [7, 8]), ([4], [9])], pad_id=0)
    assert batch.input_ids == [[1, 2, 3, 7, 8], [0, 0, 0, 4, 9]]
    assert batch.attention_mask == [[1] * 5, [0, 0, 0, 1, 1]]
    assert batch.position_ids[1] == [0, 0, 0, 0, 1]
    # logits of the last 3 positions predict tokens 3..5: the prompt's last token predicts
    # the answer's first, the answer's last predicts nothing
    assert batch.keep == 3 and batch.labels == [[7, 8, IGNORE], [IGNORE, 9, IGNORE]]


def test_answer_loss_ignores_the_prompt():
    """The loss on a tiny real LLaMA equals cross-entropy over the answer tokens alone."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pipelines.finetune_train import answer_loss

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=2)).eval()
    batch = collate([([1, 2, 3, 4], [5, 6])], pad_id=0)
    loss = answer_loss(model, batch, torch.device("cpu"))
    logits = model(torch.tensor([[1, 2, 3, 4, 5, 6]])).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[3:5], torch.tensor([5, 6]))
    assert torch.allclose(loss, expected, atol=1e-5)


def test_encode_uses_the_classify_prompt_and_ends_with_the_label(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from llama_rag.model_files import resolve_llm
    from llama_rag.prompts import messages_for
    from pipelines.finetune_data import encode

    tok = AutoTokenizer.from_pretrained(resolve_llm(load_settings()).path)
    spec = load(args(tmp_path)).spec
    prompt, answer = encode(tok, Row(id="1", text="arcade shooter", target="games"), spec, 256)
    expected = tok.apply_chat_template(messages_for(spec, "arcade shooter"), tokenize=False,
                                       add_generation_prompt=True)
    assert tok.decode(prompt) == expected
    assert tok.decode(answer) == "games<|im_end|>"
    # instruct: the user's prompt alone, the response as the answer
    prompt, answer = encode(tok, Row(id="2", text="Name a zip tool.", target="unzip"), None, 256)
    assert tok.decode(prompt).endswith("<|im_start|>user\nName a zip tool.<|im_end|>\n"
                                       "<|im_start|>assistant\n")
    assert tok.decode(answer) == "unzip<|im_end|>"


def test_instruct_task_reads_prompt_and_response_columns(tmp_path):
    path = write_csv(tmp_path, [("what is 0ad", "a game"), ("what is perl", "a language")] * 6,
                     header="q,a")
    data = load(FinetuneArgs(input=[str(path)], name="qa", task="instruct", prompt_column="q",
                             response_column="a", eval_fraction=0.3))
    assert data.spec is None and data.labels is None
    assert {r.target for r in data.train + data.eval} == {"a game", "a language"}


def manifest(name="sections", **kw) -> Manifest:
    return Manifest(**{"name": name, "method": "lora", "task": "classify", "labels": ["a", "b"],
                       "base_model": BaseModelRef(name="m", hash="h1"), **kw})


def test_registry_publishes_versions_and_switches_current(tmp_path):
    store = AdapterStore(tmp_path / "reg", tmp_path / "cache")
    files = tmp_path / "files"
    files.mkdir()
    (files / "adapter_model.safetensors").write_bytes(b"w1")
    first = store.publish(files, manifest(metrics={"eval_accuracy": 0.9}))
    (files / "adapter_model.safetensors").write_bytes(b"w2")
    second = store.publish(files, manifest())
    assert store.names() == ["sections"] and store.current("sections") == second.version
    assert store.versions("sections") == sorted([first.version, second.version])
    opened = store.open("sections")
    assert (opened.path / "adapter_model.safetensors").read_bytes() == b"w2"
    assert store.open("sections", first.version).manifest.metrics == {"eval_accuracy": 0.9}
    assert json.loads((opened.path / "manifest.json").read_text())["files"] == [
        "adapter_model.safetensors"]
    assert not list((tmp_path / "reg" / "sections" / "versions").glob(".tmp-*"))
    with pytest.raises(NotFoundError, match="no adapter 'other'.*published: sections"):
        store.open("other")


def test_registry_on_a_uri_root(tmp_path):
    store = AdapterStore(f"file://{tmp_path}/reg", tmp_path / "cache")
    files = tmp_path / "files"
    files.mkdir()
    (files / "head.safetensors").write_bytes(b"h")
    published = store.publish(files, manifest(method="embedding-head"))
    opened = AdapterStore(f"file://{tmp_path}/reg", tmp_path / "cache2").open("sections")
    assert opened.manifest.version == published.version
    assert (opened.path / "head.safetensors").read_bytes() == b"h"
    assert str(opened.path).startswith(str(tmp_path / "cache2"))


def test_adapter_for_another_base_model_is_refused():
    check_base(manifest(), BaseModelRef(name="m", hash="h1"))
    with pytest.raises(InvalidInputError, match="trained on m \\(h1\\), not on the configured"):
        check_base(manifest(), BaseModelRef(name="m2", hash="h2"))
    assert check_name("my-adapter.v2") == "my-adapter.v2"


def test_adapters_cli_list_and_show(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_RAG_ADAPTERS__DIR", str(tmp_path / "reg"))
    assert "no adapters in" in CliRunner().invoke(main, ["adapters", "list"]).output
    files = tmp_path / "files"
    files.mkdir()
    (files / "head.safetensors").write_bytes(b"h")
    AdapterStore(tmp_path / "reg", tmp_path).publish(files, manifest(metrics={"eval_accuracy": 0.8}))
    listed = CliRunner().invoke(main, ["adapters", "list"])
    assert "sections" in listed.output and "eval_accuracy=0.8" in listed.output
    shown = json.loads(CliRunner().invoke(main, ["adapters", "show", "sections"]).output)
    assert shown["base_model"] == {"name": "m", "hash": "h1"} and len(shown["versions"]) == 1
    missing = CliRunner().invoke(main, ["adapters", "show", "nope"])
    assert missing.exit_code == 2 and "no adapter 'nope'" in missing.output


def test_embedding_head_matches_logistic_regression():
    sklearn = pytest.importorskip("sklearn.linear_model")
    from pipelines.embedding_head import fit, predict

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8))
    x = np.concatenate([c + 0.8 * rng.normal(size=(40, 8)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(3), 40)
    w, b, losses = fit(x, y, 3)
    ours = predict(x, w, b)
    ref = sklearn.LogisticRegression(C=1.0, max_iter=1000).fit(x, y).predict_proba(x)
    assert np.abs(ours - ref).max() < 0.01
    assert losses[-1][1] < losses[0][1]


def test_nearest_examples_are_ordered_nearest_last():
    from pipelines.classify_examples import chosen, nearest
    from llama_rag.prompts import Example

    examples = np.eye(3, dtype=np.float32)
    query = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]], dtype=np.float32)
    assert nearest(query, examples, 2) == [[1, 0], [1, 2]]
    exs = [Example(text=t, label="a") for t in "xyz"]
    assert [e.text for e in chosen(exs, {"examples": [[1, 0]]}, 0)] == ["y", "x"]
    assert chosen(exs, {}, 0) is None


def test_merged_adapter_answers_as_the_adapter(tmp_path):
    """The job's merged copy (CPU) computes what base + LoRA computes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models

    from llama_rag.adapters import Adapter
    from pipelines.adapter_merge import merged_model, should_merge

    torch.manual_seed(0)
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    base = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2,
                                        num_key_value_heads=2))
    base.save_pretrained(base_dir)
    vocab = {f"t{i}": i for i in range(32)}
    PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0"))
                            ).save_pretrained(base_dir)
    peft = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                           init_lora_weights=False))
    peft.save_pretrained(adapter_dir)
    ids = torch.tensor([[1, 2, 3, 4]])
    expected = peft(ids).logits
    settings = load_settings().model_copy(update={"adapters": load_settings().adapters.model_copy(
        update={"cache_dir": tmp_path / "cache"})})
    adapter = Adapter(manifest=manifest(version="v1"), path=adapter_dir)
    folder = merged_model(adapter, str(base_dir), settings)
    assert merged_model(adapter, str(base_dir), settings) == folder  # made once
    merged = LlamaForCausalLM.from_pretrained(folder)
    assert torch.allclose(merged(ids).logits, expected, atol=1e-5)
    assert not torch.allclose(LlamaForCausalLM.from_pretrained(base_dir)(ids).logits, expected)
    cpu = settings.llm.model_copy(update={"num_gpus": 0})
    assert should_merge(settings.model_copy(update={"llm": cpu}))
    gpu = settings.model_copy(update={"llm": settings.llm.model_copy(update={"num_gpus": 1})})
    assert not should_merge(gpu)


def _published(tmp_path, monkeypatch, method="lora", base=None, **extra) -> None:
    """An adapter in a registry the settings point at, trained on the bundled model."""
    from llama_rag.adapters import base_ref
    from indexing.embedder import resolve_embedder
    from llama_rag.model_files import resolve_llm
    from llama_rag.prompts import LabelSet, PromptSpec

    settings = load_settings()
    if method == "embedding-head":
        own = resolve_embedder(settings).base()
    else:
        llm = resolve_llm(settings)
        own = base_ref(llm.path, llm.name)
    files = tmp_path / "files"
    files.mkdir(exist_ok=True)
    (files / "weights").write_bytes(b"w")
    spec = PromptSpec(labels=LabelSet(labels=["games", "science"]), calibrate=False)
    AdapterStore(tmp_path / "reg", tmp_path / "cache").publish(files, manifest(
        method=method, prompt=spec, labels=["games", "science"],
        base_model=base or own, **extra))
    monkeypatch.setenv("LLAMA_RAG_ADAPTERS__DIR", str(tmp_path / "reg"))


def classify_args(tmp_path, **kw):
    from pipelines.classify import ClassifyArgs

    write_csv(tmp_path)
    return ClassifyArgs(**{"input": str(tmp_path / "train.csv"), "text_column": "text",
                           "output": tmp_path / "out", "adapter": "sections", **kw})


def test_classify_with_an_adapter_uses_its_prompt_and_labels(tmp_path, monkeypatch):
    from pipelines.classify import prepare

    _published(tmp_path, monkeypatch)
    prep = prepare(classify_args(tmp_path), load_settings())
    assert prep.spec.labels.labels == ["games", "science"] and prep.spec.calibrate is False
    assert prep.job["adapter"].startswith("sections@")
    prepare(classify_args(tmp_path, labels="science,games", output=tmp_path / "o2"),
            load_settings())  # the same labels, in any order


@pytest.mark.parametrize("change,words", [
    (dict(labels="games,net"), "was trained on labels games, science"),
    (dict(examples=Path("x.jsonl")), "--examples changes the prompt"),
    (dict(adapter="missing"), "no adapter 'missing'"),
])
def test_classify_adapter_misuse_is_refused(tmp_path, monkeypatch, change, words):
    from pipelines.classify import prepare

    _published(tmp_path, monkeypatch)
    with pytest.raises((InvalidInputError, NotFoundError), match=words):
        prepare(classify_args(tmp_path, **change), load_settings())


def test_classify_refuses_an_adapter_for_another_model_and_heads_via_serve(tmp_path, monkeypatch):
    from pipelines.classify import prepare

    _published(tmp_path, monkeypatch, base=BaseModelRef(name="other", hash="0" * 16))
    with pytest.raises(InvalidInputError, match="trained on other"):
        prepare(classify_args(tmp_path), load_settings())
    _published(tmp_path, monkeypatch, method="embedding-head")
    with pytest.raises(InvalidInputError, match="embedding head: it runs in the job"):
        prepare(classify_args(tmp_path, via_serve="http://127.0.0.1:1"), load_settings())


def test_an_ensemble_adapter_runs_in_the_job_in_choice_mode(tmp_path, monkeypatch):
    from pipelines.classify import prepare

    _published(tmp_path, monkeypatch, head_weight=0.5)
    assert prepare(classify_args(tmp_path), load_settings()).adapter.manifest.head_weight == 0.5
    with pytest.raises(InvalidInputError, match="ensemble of a LoRA adapter and an embedding head"):
        prepare(classify_args(tmp_path, via_serve="http://127.0.0.1:1"), load_settings())
    with pytest.raises(InvalidInputError, match="only --mode choice gives"):
        prepare(classify_args(tmp_path, mode="generate"), load_settings())


def test_examples_k_needs_examples(tmp_path):
    from pipelines.classify import prepare

    with pytest.raises(InvalidInputError, match="--examples-k picks from --examples"):
        prepare(classify_args(tmp_path, adapter=None, labels="games,science", examples_k=3),
                load_settings())


def test_adapter_gate_judges_accuracy_or_loss_against_thresholds_and_current():
    from pipelines.finetune import gate_reasons

    args = lambda **kw: FinetuneArgs(input=["x"], name="a", **kw)  # noqa: E731
    current = manifest(method="embedding-head").model_copy(
        update={"version": "v1", "metrics": {"eval_accuracy": 0.9, "eval_loss": 1.0}})
    assert gate_reasons(args(), {"eval_accuracy": 0.1}, current) == []  # no gate asked for
    assert gate_reasons(args(gate=True), {"eval_accuracy": 0.89}, current) == []
    assert gate_reasons(args(gate=True), {"eval_accuracy": 0.8}, current) == [
        "eval accuracy 0.800 fell below version v1's 0.900 by more than 0.02"]
    assert gate_reasons(args(min_eval_accuracy=0.95), {"eval_accuracy": 0.96}, None) == []
    assert "under --min-eval-accuracy" in gate_reasons(args(min_eval_accuracy=0.95),
                                                       {"eval_accuracy": 0.9}, None)[0]
    instruct = args(gate=True, task="instruct")
    assert gate_reasons(instruct, {"eval_loss": 1.01}, current) == []
    assert "eval loss 1.5000 rose above" in gate_reasons(instruct, {"eval_loss": 1.5}, current)[0]



def test_unknown_placement_strategy_is_refused_by_name(tmp_path):
    result = CliRunner().invoke(main, ["finetune", "--input", str(write_csv(tmp_path)),
                                       "--name", "x", "--placement-strategy", "ANYWHERE"])
    assert result.exit_code == 2 and "ANYWHERE" in result.output


def test_classify_train_names_its_adapter_after_the_labeled_data_and_checks_flags(tmp_path):
    from pipelines.classify_train import adapter_name, train_for

    a = classify_args(tmp_path, adapter=None, train=str(tmp_path / "train.csv"),
                      labels="games,science")
    name = adapter_name(a, "label")
    assert name.startswith("classify-") and name == adapter_name(a, "label")
    assert adapter_name(a.model_copy(update={"labels": "science,games,net"}), "label") != name
    assert adapter_name(a.model_copy(update={"class_weight": "balanced"}), "label") != name
    write_csv(tmp_path, ROWS + [("more", "games")])
    assert adapter_name(a, "label") != name  # other labeled rows: another adapter
    with pytest.raises(InvalidInputError, match="leave --adapter out"):
        train_for(a.model_copy(update={"adapter": "x"}), load_settings(), print)
    with pytest.raises(InvalidInputError, match="give --label-column"):
        train_for(a, load_settings(), print)


def test_classify_train_checks_the_input_columns_before_training(tmp_path, monkeypatch):
    from pipelines import classify

    monkeypatch.setattr("pipelines.classify_train.train_for", lambda *a: pytest.fail("trained"))
    a = classify_args(tmp_path, adapter=None, train=str(tmp_path / "train.csv"),
                      labels="games,science", text_column="body", label_column="label")
    with pytest.raises(InvalidInputError, match="--text-column 'body' is not a column"):
        classify.run(a, load_settings())
