"""The embedder backends on the bundled MiniLM: each export agrees with torch on real
chunks and ranks as torch does, and a query from the shell never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.cluster import PY_DOCS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def chunks() -> list[str]:
    from indexing.chunking import Chunker
    from indexing.corpus import SourceFile, chunk_file
    from indexing.embedder import token_counter
    from llama_rag.config import load_settings
    from llama_rag.model_files import prepare_embedder

    settings = load_settings(None, {})
    chunker = Chunker(settings.chunking.max_tokens, settings.chunking.overlap_tokens,
                      token_counter(str(prepare_embedder(settings))))
    page = PY_DOCS / "library" / "zipfile.html"
    found = chunk_file(SourceFile(path=str(page), source="library/zipfile.html", hash=""),
                       chunker, settings.index)
    return [c.embed_text() for c in found][:60]


@pytest.fixture(scope="module")
def torch_vectors(chunks, tmp_path_factory):
    from indexing.embedder import Embedder
    from llama_rag.config import load_settings
    from indexing.embedder import resolve_embedder

    settings = load_settings(None, {"models.embed_backend": "torch"})
    return Embedder(resolve_embedder(settings), "cpu").encode(chunks + QUERIES)


QUERIES = ["How do I read a zip archive?", "How can I list the members of a ZIP file?",
           "What does ZipFile.extractall do?", "Which compression methods are supported?"]


@pytest.mark.parametrize("backend,quantization,min_cosine", [
    ("onnx", "none", 0.9999), ("onnx", "int8", 0.97),
    ("openvino", "none", 0.999), ("openvino", "int8", 0.99)])
def test_each_export_agrees_with_torch_and_ranks_the_same(
        backend, quantization, min_cosine, chunks, torch_vectors, tmp_path_factory):
    from indexing.embedder import Embedder
    from llama_rag.config import load_settings
    from indexing.embedder import resolve_embedder

    home = tmp_path_factory.mktemp(f"home-{backend}-{quantization}")
    settings = load_settings(None, {"home": str(home), "models.embed_backend": backend,
                                    "models.embed_quantization": quantization})
    ref = resolve_embedder(settings)
    assert (ref.backend, ref.quantization) == (backend, quantization)
    export = Path(ref.path)
    assert (export / "export.json").exists() and not list(export.glob("*.onnx.data"))
    vectors = Embedder(ref, batch_size=16).encode(chunks + QUERIES)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = (vectors * torch_vectors).sum(axis=1)
    assert cosine.min() >= min_cosine, (backend, quantization, cosine.min())
    n = len(chunks)
    ours = np.argsort(-(vectors[n:] @ vectors[:n].T), axis=1)[:, 0]
    theirs = np.argsort(-(torch_vectors[n:] @ torch_vectors[:n].T), axis=1)[:, :3]
    assert all(o in t for o, t in zip(ours, theirs)), "the top chunk left torch's top 3"


def test_the_default_embedder_encodes_from_many_threads_at_once(chunks):
    """The retriever encodes queries and answers from worker threads concurrently."""
    from concurrent.futures import ThreadPoolExecutor

    from indexing.embedder import Embedder, resolve_embedder
    from llama_rag.config import load_settings

    embedder = Embedder(resolve_embedder(load_settings(None, {})), num_threads=1)
    groups = [chunks[i:i + n] for i, n in [(0, 4), (4, 3), (7, 1), (8, 2), (10, 5), (15, 2)] * 4]
    alone = [embedder.encode(g) for g in groups]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(embedder.encode, groups))
    for a, b in zip(alone, together):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_a_query_from_the_shell_loads_no_torch_and_sends_no_telemetry(qa_index, tmp_path):
    """The cold start of `llama-rag search` is imports and loads: the default backend
    needs neither torch nor sentence-transformers. And OpenVINO's import-time usage
    telemetry stays off (it would write ~/intel and call Google Analytics)."""
    import os

    from llama_rag.config import load_settings

    env = {**os.environ, "HOME": str(tmp_path),
           "LLAMA_RAG_HOME": str(load_settings(None, {}).home)}
    code = (
        "import sys\n"
        "from cli.main import main\n"
        f"sys.argv = ['llama-rag', 'search', 'how do I read a zip archive', '--index-dir', "
        f"{str(qa_index)!r}, '-k', '2']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') "
        "if m in sys.modules)\n"
        "print('IMPORTED', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "library/zipfile.html" in out.stdout
    assert "IMPORTED []" in out.stdout, out.stdout[-500:]
    assert not (tmp_path / "intel").exists()
