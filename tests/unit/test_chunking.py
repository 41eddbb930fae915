import re

import pytest

from indexing.chunking import Chunker
from tests.helpers import whitespace_tokens
from indexing.loaders import load_bytes


def _doc(n_paragraphs: int = 40, words: int = 23):
    paras = [" ".join(f"w{i}_{j}." if j % 7 == 6 else f"w{i}_{j}" for j in range(words))
             for i in range(n_paragraphs)]
    md = "# Title\n\n" + "\n\n".join(paras[: n_paragraphs // 2]) + "\n\n## Part two\n\n" + \
        "\n\n".join(paras[n_paragraphs // 2:]) + "\n"
    return load_bytes(md.encode(), "doc.md")[0]


@pytest.mark.parametrize("max_tokens,overlap", [(50, 0), (50, 20), (120, 30), (16, 4)])
def test_chunks_respect_size_cover_text_and_stay_in_sections(max_tokens, overlap):
    doc = _doc()
    chunks = Chunker(max_tokens, overlap, whitespace_tokens).split(doc)
    assert all(whitespace_tokens(c.text) <= max_tokens for c in chunks)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    covered = set()
    for c in chunks:
        covered.update(re.findall(r"w\d+_\d+", c.text))
        section = next(s for s in doc.sections if s.heading == c.heading)
        assert section.start <= c.start and c.end <= section.end  # never crosses a heading
    assert covered == set(re.findall(r"w\d+_\d+", doc.text))


def test_overlap_repeats_tail_of_previous_chunk():
    chunks = Chunker(60, 25, whitespace_tokens).split(_doc())
    same_section = [(a, b) for a, b in zip(chunks, chunks[1:]) if a.heading == b.heading]
    assert same_section
    assert all(b.start < a.end for a, b in same_section)


def test_long_paragraph_is_split_by_sentences_then_words():
    text = ("word " * 500).strip() + "."
    doc = load_bytes(text.encode(), "long.txt")[0]
    chunks = Chunker(64, 8, whitespace_tokens).split(doc)
    assert len(chunks) >= 8
    assert all(whitespace_tokens(c.text) <= 64 for c in chunks)


def test_one_huge_token_is_cut_by_characters():
    doc = load_bytes(("x" * 5000).encode(), "blob.txt")[0]
    chunks = Chunker(16, 0, lambda t: max(1, len(t) // 10)).split(doc)
    assert "".join(c.text for c in chunks) == "x" * 5000


def test_ids_are_deterministic_and_unique():
    a = Chunker(50, 10, whitespace_tokens).split(_doc())
    b = Chunker(50, 10, whitespace_tokens).split(_doc())
    assert [c.id for c in a] == [c.id for c in b]
    assert len({c.id for c in a}) == len(a)


def test_heading_only_section_is_not_a_chunk():
    doc = load_bytes(b"# Top\n\n## Sub\n\nBody text here.\n", "x.md")[0]
    chunks = Chunker(50, 0, whitespace_tokens).split(doc)
    assert [c.heading for c in chunks] == [["Top", "Sub"]]


def test_embed_text_carries_heading_path():
    doc = load_bytes(b"# Top\n\n## Sub\n\nBody text here.\n", "x.md")[0]
    [chunk] = Chunker(50, 0, whitespace_tokens).split(doc)
    assert chunk.embed_text().startswith("Top > Sub\n")


@pytest.mark.parametrize("max_tokens,overlap", [(0, 0), (10, 10), (10, -1)])
def test_invalid_parameters_are_refused(max_tokens, overlap):
    with pytest.raises(ValueError):
        Chunker(max_tokens, overlap, whitespace_tokens)


def test_a_page_of_headings_alone_is_still_indexed():
    # a chapter's contents page: its title, the table of contents dropped as chrome
    doc = load_bytes(b"<html><body><div class='chapter'><h2>Chapter 2. The SQL Language</h2>"
                     b"<div class='toc'><a href='x.html'>2.1 Intro</a></div></div></body></html>",
                     "chapter.html")[0]
    assert [c.text for c in Chunker(100, 10, lambda t: len(t.split())).split(doc)] == [
        "Chapter 2. The SQL Language"]
