"""API reference documents (Sphinx's Python domain): how their entries read as text,
and the per-version index of entries by name.

Sphinx renders an API entry as a signature line (``ZipFile.read(name, pwd=None)``)
followed by its description. Dense and BM25 ranking both favour the examples that
repeat a name over the one line that defines it, so a definition question ("What does
json.dumps() do?") looks the entry up by name. This is a profile for one kind of
document: the HTML loader marks pages that hold Sphinx API entries
(``metadata.profile``, ``API_REFERENCE``), the entry index is built from marked
chunks only, and the answering rules that use it (qa.api_reference) apply only to an
index that holds such pages.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

from indexing.text import paragraphs

API_REFERENCE = "api-reference"  # metadata["profile"] of a page with API entries
_NOTES = ("new in version", "changed in version", "deprecated since", "note", "see also",
          "warning", "availability", "raises an auditing event")
_ENTRY = re.compile(  # how Sphinx renders an API entry's signature line as text
    r"^(?:(?:class|exception|async|classmethod|staticmethod|abstractmethod|awaitable|"
    r"coroutine|final|property)\s+)*(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)")
# the object types of Sphinx's domains, as classes of the <dl> of an entry
_SPHINX_DOMAINS = frozenset({"py", "c", "cpp", "js"})


def is_api_page(root) -> bool:
    """An lxml HTML tree holds Sphinx API entries (a ``<dl class="py function">``...)."""
    return any(_SPHINX_DOMAINS & set((dl.get("class") or "").split())
               for dl in root.iter("dl"))


def is_api_chunk(metadata: str | None) -> bool:
    """A chunk's stored metadata (JSON) marks it as part of an API reference page."""
    if not metadata or API_REFERENCE not in metadata:
        return False
    try:
        return json.loads(metadata).get("profile") == API_REFERENCE
    except (ValueError, AttributeError):
        return False


def is_signature(paragraph: str) -> bool:
    """An API entry's signature line: a dotted name or a call, no sentence in it."""
    m = _ENTRY.match(paragraph)
    if not m or len(paragraph) >= 300 or ". " in paragraph:
        return False
    rest = paragraph[m.end():]  # a call opens right after its name: "Keep (don't delete)
    # input files." is a sentence and "max_connections (integer)" a setting's term
    return ("." in m.group("name") or rest[:1] == "(" or rest.lstrip()[:1] in ("=", "")
            or rest.lstrip().startswith("->"))


def is_answer(paragraph: str) -> bool:
    """A paragraph that can hold the entry's answer (not a note, table cell or signature)."""
    return (len(paragraph.split()) >= 3 and paragraph.rstrip()[-1:] in ".:!"
            and not is_signature(paragraph) and not paragraph.lower().startswith(_NOTES))


def entry_answer(following: list[str]) -> str | None:
    """The entry's first answering paragraph: past stacked signature lines and version
    notes, and not past the next entry's signature."""
    started = False
    for para in following:
        if is_signature(para):
            if started:
                return None
            continue
        started = True
        if is_answer(para):
            return para
    return None


def entries(text: str) -> list[str]:
    """The names of the API entries a chunk documents: signature lines followed by their
    description (or ending the chunk), not a contents page's list of names."""
    paras = paragraphs(text)
    return [name for i, p in enumerate(paras) if (name := entry_name(p))
            and (i == len(paras) - 1 or entry_answer(paras[i + 1:]) is not None)]


def entry_name(paragraph: str) -> str | None:
    """The dotted name a signature line documents (``ZipFile.read(...)`` -> ``ZipFile.read``)."""
    return _ENTRY.match(paragraph).group("name") if is_signature(paragraph) else None


def names_match(shown: str, wanted: str) -> bool:
    """``shown`` (as an entry writes it) is ``wanted`` or a dotted suffix of it."""
    a, b = shown.split("."), wanted.split(".")
    return len(a) <= len(b) and b[-len(a):] == a


class SymbolIndex:
    """Entry names -> rows of one index version, built on first use, held in memory."""

    def __init__(self, by_last: dict[str, list[tuple[int, str]]]) -> None:
        self.by_last = by_last

    @classmethod
    def build(cls, texts: list[str], marked: list[bool] | None = None) -> "SymbolIndex":
        """From the chunks' texts; ``marked``: which chunks are of API reference pages
        (None: all)."""
        by_last: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for row, text in enumerate(texts):
            if marked is not None and not marked[row]:
                continue
            for name in entries(text):
                by_last[name.rsplit(".", 1)[-1]].append((row, name))
        return cls(dict(by_last))

    def __bool__(self) -> bool:
        return bool(self.by_last)

    def named(self, rows: set[int], prefixes: list[str]) -> list[int]:
        """Rows among ``rows`` documenting an entry whose last part starts with one of
        ``prefixes`` (a how-to question's words: "extract" finds ``extractall``)."""
        found = {row for last, listed in self.by_last.items()
                 if any(last.lower().replace("_", "").startswith(p) for p in prefixes)
                 for row, _ in listed if row in rows}
        return sorted(found)

    def rows(self, name: str, limit: int = 4) -> list[int]:
        """Rows documenting ``name`` (or a dotted suffix of it), most qualified first;
        the caller adds each row's successor, where an entry's line ends a chunk."""
        found = sorted(((-shown.count("."), row) for row, shown in
                        self.by_last.get(name.rsplit(".", 1)[-1], []) if names_match(shown, name)))
        rows: list[int] = []
        for _, row in found:
            if row not in rows:
                rows.append(row)
        return rows[:limit]
