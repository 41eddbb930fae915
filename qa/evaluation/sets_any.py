"""`llama-rag eval make-set` for a corpus of any kind: QA items from the documents' own
structure, with no generator's markup to lean on.

Every file the loaders read (HTML of any generator, Markdown, text, PDF, docx) is
loaded as the index loads it and cut into units as the answerer cuts it
(qa.passages), so a set sees the documents the way the engine does:

- a FAQ entry, a question the document asks itself ("How do I change the URL of a
  remote?") with the prose under it: the question as the document words it, the
  first sentence under it as the reference;
- a section heading of a few words with a sentence under it sharing a word with it:
  "What is <heading>?" ("How do I go about <heading>?" for "Installing packages").

Key facts are the reference's rarest words across the corpus that the question does
not hold (an answer that holds one says something the question did not). Items are
split by document with the Sphinx sets' seeded hash, so a document used for tuning
(train) never lands in the test split; off-topic questions are added as there.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterator

from indexing.documents import Document
from indexing.text import content_words
from llama_rag.errors import InvalidInputError, LoadError
from qa.evaluation.sets import (EvalItem, Split, add_unique, off_topic_items, page_split,
                                sample_pages)
from qa.passages import answerable, units

SUFFIXES = (".html", ".htm", ".md", ".markdown", ".txt", ".pdf", ".docx")
PAGE_HEADING = re.compile(r"^page \d+$", re.I)  # a PDF page without an outline
KEY_FACTS = 3


def documents(docs: Path) -> Iterator[tuple[str, Document]]:
    """(source, document) for every readable file under ``docs`` (unreadable ones are
    skipped: the index lists them in errors.jsonl)."""
    from indexing.loaders import load_path

    for path in sorted(p for p in docs.rglob("*") if p.is_file()
                       and p.suffix.lower() in SUFFIXES and not p.name.startswith((".", "_"))):
        source = path.relative_to(docs).as_posix()
        try:
            for doc in load_path(path, source):
                yield source, doc
        except (LoadError, OSError):
            continue


def has_sphinx_entries(docs: Path, look_at: int = 200) -> bool:
    """The folder holds Sphinx API reference pages (the Sphinx set applies)."""
    pages = sorted(docs.rglob("*.html"))[:look_at]
    return any(b'<dl class="py ' in p.read_bytes() for p in pages)


def heading_question(title: str) -> str:
    first = title.split()[0]
    if first.lower().endswith("ing") and len(first) > 5:
        return f"How do I go about {title[0].lower() + title[1:]}?"
    return f"What is {title}?"


def document_items(doc: Document, source: str) -> Iterator[EvalItem]:
    """The FAQ and heading items of one document, without key facts yet."""
    for section in doc.sections:
        found = units(1, doc.text[section.start:section.end])
        for i, unit in enumerate(found):
            if unit.prompt and unit.text.endswith("?") and 4 <= unit.words <= 30:
                under = next((u for u in found[i + 1:i + 4] if answerable(u) and u.words >= 5),
                             None)
                if under is not None:
                    yield EvalItem(question=unit.text, reference=under.text, sources=[source],
                                   kind="faq")
        title = section.heading[-1].strip() if section.heading else ""
        if not 1 < len(title.split()) < 8 or title.endswith("?") or PAGE_HEADING.match(title):
            continue
        first = next((u for u in found if answerable(u) and u.words >= 5), None)
        if first is not None and content_words(title) & content_words(first.text):
            yield EvalItem(question=heading_question(title), reference=first.text,
                           sources=[source], kind="heading")


def key_facts(item: EvalItem, document_frequency: Counter) -> list[str]:
    """The reference's rarest words in the corpus that the question does not hold."""
    asked = content_words(item.question)
    words = [w for w in content_words(item.reference or "") - asked if len(w) > 3]
    return sorted(words, key=lambda w: (document_frequency[w], w))[:KEY_FACTS]


def make_any_set(docs: Path, n: int | None, seed: int, split: Split, unanswerable: int,
                 per_page: int = 3, test_fraction: float = 0.5) -> list[EvalItem]:
    """Up to ``n`` items from the documents of ``split`` (at most ``per_page`` a
    document, FAQ entries first), then ``unanswerable`` off-topic questions."""
    if not docs.is_dir():
        raise InvalidInputError(f"--from {docs}: not a folder", param="from")
    by_doc: dict[str, list[EvalItem]] = defaultdict(list)
    frequency: Counter = Counter()
    for source, doc in documents(docs):
        frequency.update(content_words(doc.text))
        if split != "all" and page_split(source, seed, test_fraction) != split:
            continue
        add_unique(by_doc[source], document_items(doc, source))
    if not by_doc:
        raise InvalidInputError(f"--from {docs}: no FAQ entries or headings with text under "
                                f"them found in the {split} split", param="from")
    rng = random.Random(seed)

    def pick(items: list[EvalItem]) -> list[EvalItem]:
        faq = [i for i in items if i.kind == "faq"]
        headings = [i for i in items if i.kind == "heading"]
        picked = rng.sample(faq, min(per_page, len(faq)))
        picked += rng.sample(headings, min(per_page - len(picked), len(headings)))
        return [i.model_copy(update={"key_facts": key_facts(i, frequency)}) for i in picked]

    return sample_pages(by_doc, rng, pick, n) + off_topic_items(rng, unanswerable)
