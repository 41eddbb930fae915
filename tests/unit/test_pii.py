"""privacy.mask_pii: what is masked, what is left alone, streams and logs."""

from __future__ import annotations

import logging

import pytest

from llama_rag.pii import MaskingFilter, StreamMasker, mask


@pytest.mark.parametrize("text,masked", [
    ("write to jane.doe+docs@example.co.uk today", "write to [EMAIL] today"),
    ("card 4111 1111 1111 1111 expires", "card [CARD] expires"),
    ("card 4111-1111-1111-1111.", "card [CARD]."),
    ("pay DE89 3704 0044 0532 0130 00 now", "pay [IBAN] now"),
    ("IBAN GB82WEST12345698765432", "IBAN [IBAN]"),
    ("call +1 555 123 4567 or (030) 1234 5678", "call [PHONE] or [PHONE]"),
    ("mobile +4915112345678", "mobile [PHONE]"),
])
def test_pii_is_masked(text, masked):
    assert mask(text) == masked


@pytest.mark.parametrize("text", [
    "released 2026-11-23 10:00 UTC", "host 192.168.100.200 port 8000", "Python 3.11.7",
    "card 4111 1111 1111 1112 fails Luhn", "DE89 3704 0044 0532 0130 01 fails mod-97",
    "order 12345678", "zlib.crc32(data, 0xffffffff)", "version 2.60.0 of ray[serve]",
])
def test_ordinary_numbers_and_text_are_left_alone(text):
    assert mask(text) == text


def test_a_stream_never_shows_pii_split_across_tokens():
    text = ("Refunds are paid within five working days of the request, to the card that paid. "
            "Refunds go to card 4111 1111 1111 1111 or jane@example.com, then we call "
            "+1 555 123 4567. After that the case is closed and the archive keeps a record.")
    tokens = [text[i:i + 3] for i in range(0, len(text), 3)]
    masker = StreamMasker()
    shown = [masker.feed(t) for t in tokens] + [masker.close()]
    assert "".join(shown) == mask(text)
    assert not any("4111" in s or "jane@" in s or "555" in s for s in shown)
    assert any(shown[:-1])  # text flows before the end, not all at once


def test_log_records_are_masked_before_formatting():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "question from %s: %s", (
        "jane@example.com", "card 4111 1111 1111 1111"), None)
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "question from [EMAIL]: card [CARD]"


def test_indexed_chunks_are_masked_and_a_changed_setting_is_refused(tmp_path):
    from indexing.chunking import Chunker
    from indexing.corpus import list_corpus
    from indexing.embedder import EmbedderInfo
    from indexing.store import Manifest
    from llama_rag.config import load_settings
    from llama_rag.errors import InvalidInputError
    from pipelines.ingest import check_chunking, chunking_of, file_rows

    (tmp_path / "a.md").write_text("# Contact\n\nMail jane@example.com or call +1 555 123 4567.")
    settings = load_settings(None, {"privacy.mask_pii": True})
    [source] = list_corpus([tmp_path], settings.index)
    [row] = file_rows(source, Chunker(200, 20, lambda t: len(t.split())), settings.index,
                      mask_pii=True)
    assert "[EMAIL]" in row["text"] and "[PHONE]" in row["text"] and "jane" not in row["embed_text"]
    built = Manifest(embedder=EmbedderInfo(name="m", dim=4), chunking=chunking_of(settings))
    check_chunking(built, settings)  # same settings: fine
    with pytest.raises(InvalidInputError, match="mask_pii=True, this run has mask_pii=False"):
        check_chunking(built, load_settings(None, {}))
    old = Manifest(embedder=EmbedderInfo(name="m", dim=4),
                   chunking=load_settings(None, {}).chunking.model_dump())
    check_chunking(old, load_settings(None, {}))  # versions from before the setting existed
