from pathlib import Path

import pytest
import yaml

from llama_rag.config import Settings, dump_settings, load_settings
from llama_rag.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_precedence_defaults_file_env_flags(tmp_path, monkeypatch):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("index:\n  kind: hnsw\n  hnsw_m: 16\n  dir: from-file\n")
    assert load_settings(cfg).index.hnsw_m == 16
    monkeypatch.setenv("LLAMA_RAG_INDEX__HNSW_M", "48")
    monkeypatch.setenv("LLAMA_RAG_INDEX__DIR", "from-env")
    s = load_settings(cfg, {"index.dir": "from-flag", "ingest.embed_batch_size": None})
    assert (s.index.kind, s.index.hnsw_m, str(s.index.dir)) == ("hnsw", 48, "from-flag")
    assert s.ingest.embed_batch_size == Settings.model_fields["ingest"].default_factory().embed_batch_size


@pytest.mark.parametrize("text,field", [
    ("index:\n  kind: magic\n", "index.kind"),
    ("index:\n  hnsw_m: 0\n", "index.hnsw_m"),
    ("chunking:\n  max_tokens: 50\n  overlap_tokens: 50\n", "chunking"),
    ("indx:\n  kind: flat\n", "indx"),
    ("index:\n  colour: blue\n", "index.colour"),
])
def test_invalid_values_name_the_field(tmp_path, text, field):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert err.value.param == field and field in err.value.message


def test_invalid_env_value_names_field(monkeypatch):
    monkeypatch.setenv("LLAMA_RAG_INGEST__EMBED_CONCURRENCY", "lots")
    with pytest.raises(ConfigError, match="ingest.embed_concurrency"):
        load_settings()


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad)


def test_home_expands_user(monkeypatch):
    monkeypatch.setenv("LLAMA_RAG_HOME", "~/somewhere")
    assert "~" not in str(load_settings().home)


def test_example_config_is_complete_and_loads():
    example = ROOT / "config.example.yaml"
    loaded = load_settings(example)
    assert yaml.safe_load(example.read_text()).keys() == Settings.model_fields.keys()
    assert loaded.index.kind == "auto"


def test_dump_round_trips(tmp_path):
    cfg = tmp_path / "dumped.yaml"
    cfg.write_text(dump_settings(load_settings(None, {"index.kind": "hnsw"})))
    assert load_settings(cfg).index.kind == "hnsw"


@pytest.mark.parametrize("env,new", [
    ("LLAMA_RAG_QA__RETRIEVER_NUM_CPUS", "retrieval.num_cpus"),
    ("LLAMA_RAG_INGEST__RAY_NUM_CPUS", "ray.num_cpus"),
    ("LLAMA_RAG_SERVE__MAX_ONGOING_REQUESTS", "serve.max_running_requests"),
])
def test_renamed_settings_fail_naming_the_new_key(monkeypatch, env, new):
    monkeypatch.setenv(env, "1")
    with pytest.raises(ConfigError, match=f"renamed {new}"):
        load_settings()


def test_renamed_settings_in_a_file_fail_too(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("qa:\n  retriever_num_cpus: 0.5\n")
    with pytest.raises(ConfigError, match="qa.retriever_num_cpus was renamed retrieval.num_cpus"):
        load_settings(path)


@pytest.mark.parametrize("gpu", [{"models.embed_device": "cuda"}, {"ingest.embed_num_gpus": 1}])
def test_a_gpu_for_the_embedder_needs_the_torch_backend(gpu):
    with pytest.raises(ConfigError, match="runs on the CPU.*set models.embed_backend: torch"):
        load_settings(None, gpu)
    assert load_settings(None, {**gpu, "models.embed_backend": "torch"}).models.embed_backend \
        == "torch"


def test_index_num_gpus_flag_embeds_with_torch(monkeypatch, tmp_path):
    """`llama-rag index --num-gpus 1` works with the default (CPU) backend configured."""
    from click.testing import CliRunner

    from cli import main as cli

    seen = {}

    def fake_run(paths, settings, **kwargs):
        seen["settings"] = settings
        raise SystemExit(0)

    monkeypatch.setattr("pipelines.ingest.run", fake_run)
    (tmp_path / "a.txt").write_text("hello")
    result = CliRunner().invoke(cli.main, ["index", str(tmp_path / "a.txt"), "--index-dir",
                                           str(tmp_path / "idx"), "--num-gpus", "1"])
    assert result.exit_code == 0, result.output
    assert seen["settings"].models.embed_backend == "torch"
    assert seen["settings"].ingest.embed_num_gpus == 1
