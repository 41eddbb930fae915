"""/v1/files/{source} (services.documents): a cited file of the indexed folder, and
nothing else on the disk."""

from __future__ import annotations

import pytest

from llama_rag.config import Settings
from llama_rag.errors import ForbiddenError, NotFoundError
from llama_rag.protocol import Access
from services.documents import resolve


@pytest.fixture
def settings(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "manuals").mkdir(parents=True)
    (corpus / "manuals" / "guide.pdf").write_bytes(b"%PDF-1.4")
    (corpus / ".secret.pdf").write_bytes(b"%PDF-1.4")
    (corpus / "notes.exe").write_bytes(b"MZ")
    (tmp_path / "outside.pdf").write_bytes(b"%PDF-1.4")
    (corpus / "link.pdf").symlink_to(tmp_path / "outside.pdf")
    return Settings.model_validate({"serve": {"documents_dir": str(corpus)}})


def test_a_cited_file_is_served(settings):
    assert resolve(settings, "manuals/guide.pdf").name == "guide.pdf"


@pytest.mark.parametrize("source", ["../outside.pdf", "link.pdf", ".secret.pdf", "notes.exe",
                                    "manuals/missing.pdf", "/etc/passwd", "manuals"])
def test_anything_else_is_not_found(settings, source):
    with pytest.raises(NotFoundError):
        resolve(settings, source)


def test_no_folder_no_files_and_a_key_of_other_collections_is_refused(settings):
    with pytest.raises(NotFoundError, match="documents_dir is unset"):
        resolve(Settings(), "manuals/guide.pdf")
    with pytest.raises(ForbiddenError):
        resolve(settings, "manuals/guide.pdf", Access(collections=frozenset({"faq"})))
