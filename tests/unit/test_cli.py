import json
import os
import signal
import threading
import subprocess
import sys

import pytest
from click.testing import CliRunner

from cli.main import main


def test_help_is_instant_and_loads_no_heavy_module():
    code = ("import sys; from cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('ray', 'torch', 'vllm', 'faiss', 'sentence_transformers', 'pyarrow') "
            "if m in sys.modules]\nprint('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_missing_path_exits_2_with_one_line(tmp_path):
    result = CliRunner().invoke(main, ["index", str(tmp_path / "nope"), "--index-dir",
                                       str(tmp_path / "idx")])
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: path does not exist: {tmp_path / 'nope'}"


def test_invalid_setting_exits_2_naming_field(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_RAG_INDEX__KIND", "magic")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 2 and "index.kind" in result.output
    assert "Traceback" not in result.output


def test_config_prints_effective_settings(monkeypatch):
    monkeypatch.setenv("LLAMA_RAG_INDEX__HNSW_M", "24")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 0 and "hnsw_m: 24" in result.output


def test_search_without_index_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(main, ["search", "zip", "--index-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no index is published" in result.output


def _hybrid_hits(monkeypatch):
    """A hybrid search whose fused order differs from the cosines (what `make demo` shows)."""
    from indexing import retriever as search_mod
    from llama_rag.protocol import Hit, SearchResponse

    hits = [Hit(rank=i + 1, score=cos, source=f"doc{i}.html", title=f"Doc {i}", text="some text",
                chunk_id=f"c{i}", heading=[], start=0, end=9)
            for i, cos in enumerate([0.660, 0.610, 0.644])]

    class Core:
        def __init__(self, settings):
            pass

        def search(self, request, access=None):
            seen.update(request=request, access=access)
            return SearchResponse(version="v1", mode="hybrid", hits=hits, retrieve_ms=1.0)

    seen: dict = {}
    monkeypatch.setattr(search_mod, "RetrieverCore", Core)
    return seen


def test_search_reads_as_a_group_and_filters_on_metadata(monkeypatch):
    seen = _hybrid_hits(monkeypatch)
    result = CliRunner().invoke(main, ["search", "zip", "--groups", "hr,eng", "--filter",
                                       "year=2026", "--filter", "team = core"])
    assert result.exit_code == 0, result.output
    assert seen["access"].groups == {"hr", "eng"}
    assert seen["request"].filters.metadata == {"year": "2026", "team": "core"}
    assert CliRunner().invoke(main, ["search", "zip"]).exit_code == 0
    assert seen["access"].groups is None  # no flag: every document
    for bad in (["--groups", "no way!"], ["--filter", "nofield"], ["--filter", "=x"]):
        result = CliRunner().invoke(main, ["search", "zip", *bad])
        assert result.exit_code == 2 and bad[0] in result.output, result.output


def test_search_output_says_what_ranks_the_hits_and_labels_the_cosine(monkeypatch):
    _hybrid_hits(monkeypatch)
    result = CliRunner().invoke(main, ["search", "zip"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ranked by hybrid retrieval; cos = cosine similarity to the query"
    assert lines[1] == "1. [cos 0.660] doc0.html - Doc 0"
    assert lines[3].startswith("2. [cos 0.610]") and lines[5].startswith("3. [cos 0.644]")
    assert [h["rank"] for h in json.loads(CliRunner().invoke(
        main, ["search", "zip", "--json"]).output)] == [1, 2, 3]


def test_index_json_summary_shape(tmp_path, monkeypatch):
    """--json prints the summary model; the run itself is faked at the library boundary."""
    from pipelines import ingest

    def fake_run(paths, settings, progress, gate):
        assert gate is None
        return ingest.IngestSummary(index_dir=str(settings.index.dir), version="v1", published=True,
                                    added=1, updated=0, unchanged=0, deleted=0, failed=0,
                                    chunks_embedded=3, chunks_total=3, seconds=1.0,
                                    chunks_per_s=3.0, errors=[])

    monkeypatch.setattr(ingest, "run", fake_run)
    (tmp_path / "a.txt").write_text("x")
    result = CliRunner().invoke(main, ["index", str(tmp_path), "--index-dir", str(tmp_path / "i"),
                                       "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["chunks_total"] == 3


def test_index_gate_refusal_prints_both_figures_and_exits_5(tmp_path, monkeypatch):
    from qa.evaluation.gate import GateFigures, GateVerdict
    from pipelines import ingest

    def fake_run(paths, settings, progress, gate):
        assert gate.min_hit5 == 0.9 and gate.max_drop == 0.02
        verdict = GateVerdict(passed=False, candidate=GateFigures(hit_at_5=0.5, mrr=0.4),
                              current=GateFigures(hit_at_5=1.0, mrr=0.9),
                              reasons=["hit@5 0.500 is under --min-hit5 0.9"])
        return ingest.IngestSummary(index_dir="i", version="v1", published=False, added=0,
                                    updated=1, unchanged=0, deleted=0, failed=0,
                                    chunks_embedded=3, chunks_total=3, seconds=1.0,
                                    chunks_per_s=3.0, errors=[], gate=verdict)

    monkeypatch.setattr(ingest, "run", fake_run)
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "qa.jsonl").write_text("{}")
    args = ["index", str(tmp_path / "a.txt"), "--index-dir", str(tmp_path / "i")]
    result = CliRunner().invoke(main, args + ["--gate", str(tmp_path / "qa.jsonl"),
                                              "--min-hit5", "0.9"])
    assert result.exit_code == 5
    assert "the gate refused the new version; version v1 stays current" in result.output
    assert "gate new: hit@5 0.500" in result.output and "gate current: hit@5 1.000" in result.output
    assert "hit@5 0.500 is under --min-hit5 0.9); CURRENT stays v1" in result.output
    assert CliRunner().invoke(main, args + ["--min-hit5", "0.9"]).exit_code == 2  # needs --gate


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_alike_on_sigint_and_sigterm(sig):
    """`llama-rag serve` waits in wait_for_stop: either signal returns it (and restores the
    previous handlers), so `kill -INT` and `kill -TERM` both delete the app and exit."""
    from cli.serve import wait_for_stop

    before = signal.getsignal(sig)
    threading.Timer(0.2, os.kill, (os.getpid(), sig)).start()
    assert wait_for_stop() == sig
    assert signal.getsignal(sig) is before


def test_json_stdout_holds_the_json_alone_whatever_writes_to_fd_1_later():
    """Ray's driver prints worker log lines on stdout from a thread at any time: with
    --json they must reach stderr, whether printed by Python or written to fd 1."""
    import subprocess
    import sys

    script = ("import os, sys\n"
              "from llama_rag.commands import stdout_for_json\n"
              "out = stdout_for_json()\n"
              "print('(raylet) a log line')\n"
              "out.write('{\"published\": true}\\n'); out.flush()\n"
              "os.write(1, b'rpc_code: 14 after the summary\\n')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"published": True}
    assert "a log line" in done.stderr and "rpc_code: 14" in done.stderr
