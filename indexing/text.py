"""The one text splitter: paragraphs, sentences and words, for every layer.

Chunking packs paragraphs (and, inside a paragraph too long for a chunk, clauses);
loaders split plain text into paragraphs; answering quotes sentences; attribution
marks sentences of a generated answer; evaluation scores words. One module, so a
sentence means the same thing wherever it is counted. Pure, no dependencies.
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from llama_rag.errors import LoadError

PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
# where a paragraph too long for one chunk may be cut: after . ! ? : ; and whitespace
CLAUSE_BREAK = re.compile(r"(?<=[.!?:;])\s+")
WORD_RUN = re.compile(r"\S+")
# a sentence ends at . ! ? before whitespace, unless the dot ends a common abbreviation
# (or an initial): "Create an archive (eg. zip or tar)." is one sentence
_ABBREVIATIONS = ("e.g", "E.g", "eg", "Eg", "i.e", "I.e", "ie", "etc", "vs", "cf", "viz",
                  "approx", "esp", "incl", "No")
_SENTENCE_END = re.compile("".join(rf"(?<!\b{re.escape(a)})" for a in _ABBREVIATIONS)
                           + r"(?<!\b[A-Z])[.!?](?=\s)")
# a sentence or line of free text (a generated answer), with its end
_SENTENCE_OR_LINE = re.compile(r".+?(?:[.!?](?=\s|$)|\n|$)", re.S)
_WORD = re.compile(r"[A-Za-z0-9_]+")
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it of on or the this to "
    "what when where which who why will with you your my me use used using there their".split())


def spans(pattern: re.Pattern[str], text: str, base: int = 0) -> Iterator[tuple[int, int]]:
    """Pieces of ``text`` between matches of ``pattern``, as absolute [start, end)."""
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            yield base + pos, base + m.start()
        pos = m.end()
    if pos < len(text):
        yield base + pos, base + len(text)


FENCE = re.compile(r"^\s*(```|~~~)")  # a Markdown code fence line


def fenced(literal: str) -> str:
    """A line of preformatted text (an HTML ``<pre>``) as a Markdown fenced block, so the
    passage layer reads it as code whatever it looks like ("git tag -s v1.0" has no
    prompt)."""
    return f"```\n{literal}\n```"


def paragraphs(text: str) -> list[str]:
    return [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]


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


def sentence_spans(text: str, min_chars: int = 20) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of free text with some words in it (a code
    fence line is none)."""
    return [(m.start(), m.end()) for m in _SENTENCE_OR_LINE.finditer(text)
            if len(m.group(0).strip()) >= min_chars
            and not FENCE.match(m.group(0))]


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in STOP_WORDS}


_EDGE = "?!,;:()[]{}\"'`“”‘’<>"
_LITERAL_CHARS = re.compile(r"\d|\w[-_./:]\w|^--?\w")


def literals(question: str) -> list[str]:
    """What the question names literally (a value, a version, an option, a dotted name:
    ``08-Jan-99``, ``3.11``, ``--force``, ``core.editor``): the embedder reads these as
    near any similar string, and a passage that spells one out is likely the one about it."""
    found = []
    for token in question.split():
        token = token.strip(_EDGE).rstrip(".")
        if len(token) >= 2 and _LITERAL_CHARS.search(token) and token.lower() not in found:
            found.append(token.lower())
    return found


def spells(text: str, literal: str) -> bool:
    """``literal`` stands in ``text`` as a whole token (``32`` is not in ``32-bit``)."""
    return re.search(rf"(?<![\w.-]){re.escape(literal)}(?![\w-]|\.\w)", text,
                     re.IGNORECASE) is not None


def decode_text(data: bytes) -> str:
    """UTF-8 text of a file, or a LoadError that says why it is not text."""
    if not data.strip():
        raise LoadError("empty file")
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LoadError(f"not valid UTF-8 (byte {exc.start}: {data[exc.start:exc.start+1]!r})") from None
    if not text.strip():
        raise LoadError("empty file")
    return text


# a title that is a name: lower case or with an identifier's marks, alone, with a manual
# section ("git-add(1) Manual Page"), or before a dash and what it does
_TITLE_NAME = re.compile(r"^([a-z][\w.+-]*|[A-Za-z][\w+-]*[._][\w.+-]*)"
                         r"(?:\(\d\w*\)(?: Manual Page)?|\s+[-\u2013\u2014]\s+\S.*)?$")


def title_name(title: str) -> str | None:
    """The name a document's title gives it (a command, a module, a program: "grep",
    "git-rebase(1) Manual Page", "zipfile — Work with ZIP archives"), lower case, or None
    for a title in words ("Submitting Patches", "CREATE TABLE")."""
    m = _TITLE_NAME.match(title.strip())
    return m.group(1).lower() if m and len(m.group(1)) >= 2 else None


def family_names(found: Iterable[str]) -> set[str]:
    """The names others extend ("git" beside "git-add", "os" beside "os.path"): a family's
    name, which a question says whatever page of the family it is about."""
    known = set(found)
    return {n for n in known for other in known if other != n and other.startswith(n)
            and other[len(n):len(n) + 1] in ("-", "_", ".")}


def names(question: str, name: str) -> bool:
    """The question says ``name`` as a word ("Can grep ignore case?"), a hyphen as a space
    too ("git rebase" for git-rebase)."""
    pattern = re.escape(name).replace("\\-", "[- ]")
    return re.search(rf"(?<![\w.-]){pattern}(?![\w-])", question.lower()) is not None
