"""Extractive answers: quote the sentence of the retrieved text that answers the question.

A small model paraphrases documentation into fluent errors; the sentence that
documentation itself gives is right by construction. Two selectors, both pure
(no Ray), used by /v1/ask's ``extractive`` answer mode, `llama-rag eval` and the
index gate:

- ``answer`` (ours): when the question names an API object or a section
  (``What does zipfile.ZipFile.read() do?``), the first sentence after the quoted
  text's own entry for it (the ``ZipFile.read(name, pwd=None)`` line, the heading),
  looked up by name when the ranked hits lack it; for a how-to question, the entry
  its words spell; otherwise the sentence most similar to the question by the
  retriever's embedder, a small word-overlap bonus breaking ties.
- ``overlap_sentence`` (the baseline every eval report scores beside it): the
  sentence of the top hits that shares most words with the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence

_PARA = re.compile(r"\n\s*\n")
# a sentence ends at . ! ? before whitespace, unless the dot ends a common abbreviation
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)(?<!\bcf)(?<!\b[A-Z])"
                           r"(?<!\bNo)[.!?](?=\s)")
_WORD = re.compile(r"[A-Za-z0-9_]+")
_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or the this to "
    "what when where which who why will with you your my me use used using there their".split())
# "What does X do?", "What is X?", "When is X raised?", "What is the X class?"
_SUBJECT = re.compile(
    r"^\s*(?:what|when)\s+(?:does|do|is|are|can)\s+(?:the\s+|an?\s+)?(?P<s>.+?)"
    r"(?:\s+(?:class|exception|attribute|constant|function|method|module|do|raised|"
    r"used for|for|mean))?\s*\??\s*$", re.I)
_NOTES = ("new in version", "changed in version", "deprecated since", "note", "see also",
          "warning", "availability", "raises an auditing event")
_DOTTED = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")
_ENTRY = re.compile(  # how Sphinx renders an API entry's signature line as text
    r"^(?:(?:class|exception|async|classmethod|staticmethod|abstractmethod|awaitable|"
    r"coroutine|final|property)\s+)*(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)")


@dataclass(frozen=True)
class Quote:
    """One sentence of the ``n``-th quoted hit (1-based, as the [n] marker says)."""

    n: int
    text: str
    score: float = 0.0


class Passage(Protocol):
    """What a selector needs of a retrieved chunk (llama_rag.protocol.Hit has these)."""

    source: str
    text: str
    heading: list[str]
    start: int
    end: int


def sentences(paragraph: str) -> list[str]:
    """The sentences of one paragraph, whitespace collapsed."""
    flat = " ".join(paragraph.split())
    out, start = [], 0
    for m in _SENTENCE_END.finditer(flat):
        out.append(flat[start:m.end()].strip())
        start = m.end()
    if flat[start:].strip():
        out.append(flat[start:].strip())
    return [s for s in out if s]


def first_sentence(paragraph: str) -> str:
    found = sentences(paragraph)
    return found[0] if found else ""


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in _PARA.split(text) if p.strip()]


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in _STOP}


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
def _is_signature(paragraph: str) -> bool:
    """An API entry's signature line: a dotted name or a call, no sentence in it."""
    m = _ENTRY.match(paragraph)
    if not m or len(paragraph) >= 300 or ". " in paragraph:
        return False
    rest = paragraph[m.end():].lstrip()
    return "." in m.group("name") or rest[:1] in ("(", "=", "") or rest.startswith("->")


def _is_answer(paragraph: str) -> bool:
    """A paragraph that can hold the entry's answer (not a note, table cell or signature)."""
    return (len(paragraph.split()) >= 3 and paragraph.rstrip()[-1:] in ".:!"
            and not _is_signature(paragraph) and not paragraph.lower().startswith(_NOTES))


def _entry_answer(following: list[str]) -> str | None:
    """The entry's first answering paragraph: past stacked signature lines and version
    notes, and not past the next entry's signature."""
    started = False
    for para in following:
        if _is_signature(para):
            if started:
                return None
            continue
        started = True
        if _is_answer(para):
            return para
    return None


def entries(text: str) -> list[str]:
    """The names of the API entries a chunk documents: signature lines followed by their
    description (or ending the chunk), not a contents page's list of names."""
    paras = paragraphs(text)
    return [name for i, p in enumerate(paras) if (name := entry_name(p))
            and (i == len(paras) - 1 or _entry_answer(paras[i + 1:]) is not None)]


def entry_name(paragraph: str) -> str | None:
    """The dotted name a signature line documents (``ZipFile.read(...)`` -> ``ZipFile.read``)."""
    return _ENTRY.match(paragraph).group("name") if _is_signature(paragraph) else None


def names_match(shown: str, wanted: str) -> bool:
    """``shown`` (as an entry writes it) is ``wanted`` or a dotted suffix of it."""
    a, b = shown.split("."), wanted.split(".")
    return len(a) <= len(b) and b[-len(a):] == a


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
            if answer := _entry_answer(paras[i + 1:]):
                return Quote(n, first_sentence(answer), 1.0)
            for m, after in enumerate(hits, start=1):
                if after.source == hit.source and hit.start < after.start <= hit.end + 2 and (
                        answer := _entry_answer(paragraphs(after.text))):
                    return Quote(m, first_sentence(answer), 1.0)
        if not dotted and hit.heading and hit.heading[-1].lower().strip() == name.lower() \
                and paras:
            return Quote(n, first_sentence(paras[0]), 1.0)
    return None


def candidates(hits: Sequence[Passage]) -> list[Quote]:
    """Every sentence of the hits worth quoting (not code-only or signature lines)."""
    out = []
    for n, hit in enumerate(hits, start=1):
        for para in paragraphs(hit.text):
            if _is_signature(para) or "\n" in para:  # a signature, or code (a <pre> block)
                continue
            for s in sentences(para):
                if len(s.split()) >= 4 and s[-1:] in ".!":  # not a heading, list item or question
                    out.append(Quote(n, s))
    return out


def overlap(question: str, sentence: str) -> float:
    """Share of the question's content words that ``sentence`` contains."""
    q = content_words(question)
    return len(q & content_words(sentence)) / len(q) if q else 0.0


def overlap_sentence(question: str, hits: Sequence[Passage], top: int = 3) -> Quote | None:
    """The baseline: the sentence of the top ``top`` hits sharing most words with the question."""
    found = candidates(hits[:top])
    if not found:
        return None
    return max(found, key=lambda q: (overlap(question, q.text), -q.n))


def best(question: str, pool: list[Quote], sims: Sequence[float],
         overlap_weight: float = 0.2) -> Quote | None:
    """The candidate most similar to the question (``sims``: cosine, same order as ``pool``),
    a small word-overlap bonus breaking near-ties."""
    scored = [Quote(q.n, q.text, float(s) + overlap_weight * overlap(question, q.text))
              for q, s in zip(pool, sims)]
    return max(scored, key=lambda q: (q.score, -q.n)) if scored else None


class Lookups(Protocol):
    """What the selector may ask the retriever (indexing.search.RetrieverCore has these)."""

    def entries(self, name: str) -> list: ...

    def task_entries(self, pages: list[str], words: list[str]) -> list: ...

    def similarity(self, sentences: list[str], documents: list[str]) -> list[list[float]]: ...


def answer(question: str, hits: list, lookups: Lookups, asked: str | None = None
           ) -> tuple[Quote | None, list]:
    """The extractive answer and the hits its ``n`` counts in (``hits`` plus looked-up
    chunks): the subject's definition, looked up by name when the ranked hits lack it;
    for a how-to question the entry on the two best pages whose name is the question's
    action ("extract all" -> ``extractall``); else the most similar sentence.
    ``question`` is what was retrieved (a follow-up's standalone query); ``asked``, the
    follow-up itself, names the action ("And how do I write one?")."""
    quote = definition(question, hits)
    if quote is None and (name := lookup_query(question)):
        hits = merged(hits, lookups.entries(name))
        quote = definition(question, hits)
    if quote is None and hits and (words := task_words(asked or question)
                                   or task_words(question)):
        pages = list(dict.fromkeys(h.source for h in hits[:2]))
        with_entries = merged(hits, lookups.task_entries(pages, words))
        if quote := task_entry(words, with_entries):
            hits = with_entries
    if quote is None:
        pool = candidates(hits)
        quote = best(question, pool, lookups.similarity([question], [q.text for q in pool])[0]) \
            if pool else None
    return quote, hits


_TASK = re.compile(r"^\s*(?:and\s+)?how\s+(?:do|can|should|would)\s+(?:i|you|we|one)\b", re.I)


def task_words(question: str) -> list[str]:
    """The words of a how-to question an API name may be made of, in order."""
    if not _TASK.match(question):
        return []
    return [w for w in words(question) if w not in _STOP and len(w) > 2]


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


def render(quote: Quote) -> str:
    """The answer text: the quoted sentence with its marker before the final stop."""
    text = quote.text.rstrip()
    stop = text[-1] if text[-1:] in ".!?" else ""
    return f"{text[:-1] if stop else text} [{quote.n}]{stop}"
