"""The answering profile of API reference documents (Sphinx's Python domain).

Used only for an index that holds such pages (indexing.api_entries marks them at
ingest): the general engine (qa.extractive) answers every other corpus.

- a definition question names a subject (``What does zipfile.ZipFile.read() do?``,
  ``What is X?``, ``When is X raised?``); the answer is the first sentence after the
  subject's own entry line in the hits, read on into the next chunk when the line
  ends one, past version notes, never past the next entry; looked up by name
  (``entries``) when the ranked hits lack it;
- a how-to question whose words spell an entry's name ("extract all" ->
  ``extractall``) is answered by that entry on the two best pages (``task_entries``);
- a follow-up naming a bare API name (``write()``) after a turn about a dotted one
  is answered as the qualified question ("What does zipfile.ZipFile.write() do?").
"""

from __future__ import annotations

import re
from typing import Protocol, Sequence

from indexing.api_entries import entries, entry_answer, entry_name, names_match
from indexing.text import first_sentence, paragraphs, words, STOP_WORDS
from qa.extractive import Passage, Quote

# "What does X do?", "What is X?", "When is X raised?", "What is the X class?"
_SUBJECT = re.compile(
    r"^\s*(?:what|when)\s+(?:does|do|is|are|can)\s+(?:the\s+|an?\s+)?(?P<s>.+?)"
    r"(?:\s+(?:class|exception|attribute|constant|function|method|module|do|raised|"
    r"used for|for|mean))?\s*\??\s*$", re.I)
_DOTTED = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")
_TASK = re.compile(r"^\s*(?:and\s+)?how\s+(?:do|can|should|would)\s+(?:i|you|we|one)\b", re.I)
_CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*)\(\)")


class EntryLookups(Protocol):
    """What the profile asks the retriever (indexing.retriever.RetrieverCore has these)."""

    def entries(self, name: str, collection: str | None = None, filters=None) -> list: ...

    def task_entries(self, pages: list[str], words: list[str],
                     collection: str | None = None) -> list: ...


def subject(question: str) -> str | None:
    """The dotted name or phrase a definition question asks about, or None."""
    m = _SUBJECT.match(question)
    if not m:
        return None
    s = m.group("s").strip().strip("`'\"").removesuffix("()").strip()
    return s or None


def _entry_matches(paragraph: str, name: str, hit: Passage) -> bool:
    """``paragraph`` is the signature line of ``name`` or of a dotted suffix of it, as
    Sphinx writes ``ZipFile.read(...)`` for ``zipfile.ZipFile.read``, or ``eof`` inside
    the class's entry (then the chunk names the class or its page is the module's)."""
    shown = entry_name(paragraph) if "\n" not in paragraph.strip() else None
    if shown is None or not names_match(shown, name):
        return False
    parts = name.split(".")
    return "." in shown or len(parts) == 1 or parts[-2] in hit.text or (
        parts[0] in re.split(r"[/.]", hit.source))


def lookup_query(question: str) -> str | None:
    """When the hits hold no entry for the question's dotted subject, the query that finds
    it (the name alone, for the lexical index)."""
    name = subject(question)
    return name if name and "." in name and _DOTTED.fullmatch(name) else None


def merged(hits: list, more: list) -> list:
    """``hits`` then those of ``more`` not already in them (by chunk id)."""
    seen = {h.chunk_id for h in hits}
    return hits + [h for h in more if h.chunk_id not in seen]


def definition(question: str, hits: Sequence[Passage]) -> Quote | None:
    """The first sentence after the hits' own entry for the question's subject (read on
    into the hit that continues the chunk when the entry's line ends it)."""
    name = subject(question)
    if not name:
        return None
    dotted = _DOTTED.fullmatch(name) is not None
    for n, hit in enumerate(hits, start=1):
        paras = paragraphs(hit.text)
        for i, para in enumerate(paras):
            if not (dotted and _entry_matches(para, name, hit)):
                continue
            if answer := entry_answer(paras[i + 1:]):
                return Quote(n, first_sentence(answer), 1.0)
            for m, after in enumerate(hits, start=1):
                if after.source == hit.source and hit.start < after.start <= hit.end + 2 and (
                        answer := entry_answer(paragraphs(after.text))):
                    return Quote(m, first_sentence(answer), 1.0)
        if not dotted and hit.heading and hit.heading[-1].lower().strip() == name.lower() \
                and paras:
            return Quote(n, first_sentence(paras[0]), 1.0)
    return None


def task_words(question: str) -> list[str]:
    """The words of a how-to question an API name may be made of, in order."""
    if not _TASK.match(question):
        return []
    return [w for w in words(question) if w not in STOP_WORDS and len(w) > 2]


def coverage(name: str, wanted: Sequence[str]) -> float:
    """Share of ``name`` (its last part, underscores dropped) spelled by ``wanted`` words
    end to end from its start: ``copytree`` by copy + tree is 1.0, ``read_text`` by read 0.5."""
    rest = name.rsplit(".", 1)[-1].lower().replace("_", "")
    total, covered = len(rest), 0
    while rest:
        step = max((w for w in wanted if rest.startswith(w)), key=len, default=None)
        if step is None:
            break
        covered, rest = covered + len(step), rest[len(step):]
    return covered / total if total else 0.0


def task_entry(wanted: Sequence[str], hits: Sequence[Passage]) -> Quote | None:
    """The first sentence of the entry in ``hits`` whose name the question's words spell
    whole (the longest such name first): by two or more words (``extractall``,
    ``TemporaryDirectory``), or it is the question's first word (its action: ``read``),
    as ``definition`` reads it."""
    scored = []
    for n, hit in enumerate(hits, start=1):
        for name in entries(hit.text):
            last = name.rsplit(".", 1)[-1].lower().replace("_", "")
            # spelled whole by the question's words: by two or more, or it is the action
            if coverage(name, wanted) == 1.0 and (last == wanted[0] or last not in wanted):
                scored.append((len(last), -n, name))
    for _, neg_n, name in sorted(scored, reverse=True):
        page = [i for i, h in enumerate(hits) if h.source == hits[-neg_n - 1].source]
        quote = definition(f"What does {name}() do?", [hits[i] for i in page])
        if quote is not None:
            return Quote(page[quote.n - 1] + 1, quote.text, quote.score)
    return None


def entry_quote(question: str, hits: list, lookups: EntryLookups, asked: str | None = None,
                collection: str | None = None, filters=None) -> tuple[Quote | None, list]:
    """The profile's answer and the hits its ``n`` counts in (``hits`` plus looked-up
    chunks, which the general engine then also reads): the subject's definition, looked
    up by name when the ranked hits lack it; for a how-to question the entry on the two
    best pages whose name is the question's action. ``question`` is what was retrieved
    (a follow-up's standalone query); ``asked``, the follow-up itself, names the action
    ("And how do I write one?")."""
    quote = definition(question, hits)
    if quote is None and (name := lookup_query(question)):
        hits = merged(hits, lookups.entries(name, collection, filters))
        quote = definition(question, hits)
    if quote is None and hits and (wanted := task_words(asked or question)
                                   or task_words(question)):
        pages = list(dict.fromkeys(h.source for h in hits[:2]))
        with_entries = merged(hits, lookups.task_entries(pages, wanted, collection))
        if quote := task_entry(wanted, with_entries):
            hits = with_entries
    return quote, hits


def _owner(question: str) -> str | None:
    """``zipfile.ZipFile`` for a question about ``zipfile.ZipFile.read()``, or about the
    class ``zipfile.ZipFile`` itself (asked as a class, or a CapWords name not called)."""
    name = subject(question)
    if not name or "." not in name or " " in name:
        return None
    parent, last = name.rsplit(".", 1)
    is_class = re.search(r"\bclass\b", question) or (
        "()" not in question and last[:1].isupper() and not last.isupper())
    return name if is_class else parent


def qualified(question: str, previous: str) -> str | None:
    """The follow-up as a definition question about the previous turn's owner's member,
    when it asks about a bare API name (``write()``)."""
    owner = _owner(previous)
    calls = _CALL.findall(question)
    if not owner or len(calls) != 1:
        return None
    return f"What does {owner}.{calls[0]}() do?"
