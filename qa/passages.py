"""What a retrieved chunk says, as answerable units: prose sentences, code blocks, and
the prompts (headings, FAQ questions) that introduce them.

Documents of every kind reach the answerer as chunk text: HTML and Markdown with a
blank line between blocks, PDF pages as runs of wrapped lines with no blank line at
all. A block of several lines is code only when its lines do not read as wrapped
prose; prose is joined (and words hyphenated at a line end mended) before it is cut
into sentences. A prompt is a block or sentence that asks or titles (it ends with
``?``, or it is a short line with no final stop standing alone above more text): it is
never the answer, the text under it is. Pure, no dependencies beyond the splitter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Collection

from indexing.api_entries import is_signature
from indexing.text import STOP_WORDS, paragraphs, sentences

_HYPHENATED = re.compile(r"(\w)[-\u2010]\n\s*(?=[a-z])")
_CODE_LINE = re.compile(r"^\s*(?:\$ |% |# |>>> |\.\.\. )|[{};]\s*$|^\s{4,}\S|^\s*[-*+] \S")
_TITLE_WORDS = 20  # a standalone line this short above more text titles it
# a numbered section title on a line of its own inside wrapped text (a PDF page):
# "2.3 Memory leak detection", "4.2. The stack traces", "A.1 Options"
_NUMBERED_TITLE = re.compile(r"^\s*(?:\d+(?:\.\d+)*\.?|[A-Z]\.\d+(?:\.\d+)*\.?)\s+[A-Z][^.:;,]{2,80}$")
_TITLE_LINE_WORDS = 12
_NO_TITLE_END = (".", ",", ";", "!")
_BULLET = re.compile(r"^\s*(?:[-*+\u2022]\s|\d+[.)]\s+[a-z])")
# an outline-numbered entry opening a block: a FAQ's question or a section's title
# ("4.1. My program uses the C++ STL ...", "2.2. When building Valgrind, 'make' fails")
_NUMBERED_ITEM = re.compile(r"^\d+(?:\.\d+)+\.?\s+\S")
_OUTLINE_NUMBER = re.compile(r"\d+(?:\.\d+)*\.?")
_BROKEN_WORDS = 8  # a line this long with no final stop does not end a paragraph
_TITLE_WIDTH = 0.6  # a title line is at most this share of the block's widest line
_QUESTION_END = ("?", "?)", "?\"", "::")
# a command's or entry's NAME line: "git-clean - Remove untracked files from the working
# tree", "COPY — copy data between a file and a table", "tar - an archiving utility"
_NAME_LINE = re.compile(r"^[\w.:+-]+(?:\(\d\w*\))?(?:, [\w.:+-]+)* [-–—] \w[^\n]{4,}$")
# a table's row as indexing.tables writes it: "Name: bigint; Storage Size: 8 bytes."
_ROW = re.compile(r"^[^:;\n]{1,80}: [^;\n]*(?:; [^:;\n]{1,80}: [^;\n]*)+[.!?]$")


@dataclass
class Unit:
    """One sentence of prose (``prompt``: it asks or titles), or one code block."""

    n: int  # the hit it is in (1-based)
    block: int  # its block's index in the hit
    text: str
    code: bool = False
    prompt: bool = False
    row: bool = False  # a table's row: complete on its own, never read on from
    name: bool = False  # a NAME line (name - what it does): complete on its own
    defines: bool = False  # the description right under a definition list's term
    words: int = field(init=False)

    def __post_init__(self) -> None:
        self.words = len(self.text.split())


def is_code(paragraph: str) -> bool:
    """A block of several lines most of which do not read as wrapped prose. Indentation
    counts relative to the block's usual indent: a man page or a plain-text manual
    indents all its prose."""
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if len(lines) < 2:
        return bool(lines) and bool(_CODE_LINE.search(lines[0].lstrip())) \
            and len(lines[0].split()) < 12
    usual = sorted(_indent(line) for line in lines)[len(lines) // 2]
    prose = sum(1 for line in lines if _prose_line(line[min(usual, _indent(line)):]))
    return prose * 2 < len(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _prose_line(line: str) -> bool:
    words = line.split()
    if len(words) < 4 or _CODE_LINE.search(line):
        return False
    alpha = sum(1 for w in words if w.strip(".,;:!?'\"()[]`’“”").isalpha())
    return alpha >= 0.6 * len(words)


def prose(paragraph: str) -> str:
    """A prose block as one line: wrapped lines joined, line-end hyphens mended."""
    return " ".join(_HYPHENATED.sub(r"\1", paragraph).split())


def units(n: int, text: str, headings: Collection[str] = ()) -> list[Unit]:
    """The units of hit ``n``'s text, in order (``headings``: the hit's heading path; a
    block that is one of them is a heading, never a NAME line)."""
    out: list[Unit] = []
    blocks = [piece for block in _mended(paragraphs(text)) for column in _term_columns(block)
              for piece in _titled_pieces(column)]
    term_above = False
    for b, block in enumerate(blocks):
        defines, term_above = term_above, False
        if "\n" not in block.strip() and is_signature(block):
            continue  # an API signature line: the profile's business, not an answer
        if is_code(block):
            out.append(Unit(n, b, block.strip("\n"), code=True))
            continue
        if _ROW.match(block.strip()):
            out.append(Unit(n, b, block.strip(), row=True))
            continue
        flat = prose(block)
        if block.strip() not in headings and is_name_line(flat):
            out.append(Unit(n, b, flat, name=True))
            continue
        said = sentences(flat)
        asks = bool(said) and said[-1].endswith(_QUESTION_END)
        titled = (len(said) == 1 and b + 1 < len(blocks) and len(said[0].split()) <= _TITLE_WORDS
                  and not defines)  # a term's short description above the next term
        # an entry's text ("4.1. My program uses ... classes."), not a section's title
        numbered = bool(_NUMBERED_ITEM.match(flat)) and flat[-1:] in ".?:"
        if numbered and _OUTLINE_NUMBER.fullmatch(said[0]):
            said[:2] = [" ".join(said[:2])]  # "4.1." numbers the sentence after it
        for i, sentence in enumerate(said):
            # the sentence before a question in the same block restates it ("I made a
            # mistake in the last commit. How do I change it?")
            before_question = i + 1 < len(said) and said[i + 1].endswith(_QUESTION_END)
            prompt = sentence.endswith(_QUESTION_END) or before_question or (
                asks and len(said) <= 3) or (titled and sentence[-1:] not in ".!:") or (
                numbered and (i == 0 or len(said) <= 3))
            out.append(Unit(n, b, sentence, prompt=prompt, defines=defines and not prompt))
        term_above = bool(out) and out[-1].block == b and out[-1].prompt and is_term(out[-1].text)
    return out


def _mended(blocks: list[str]) -> list[str]:
    """Blocks with a paragraph broken off mid-sentence joined again: a long line with no
    final stop, then a block opening in lowercase (a PDF's line read as a paragraph
    break, at a page's or a font's change)."""
    out: list[str] = []
    for block in blocks:
        last = out[-1].splitlines()[-1] if out else ""
        if (block[:1].islower() and len(last.split()) >= _BROKEN_WORDS and last[-1:].isalnum()
                and not is_code(out[-1]) and not is_code(block)):
            out[-1] = f"{out[-1]}\n{block}"
        else:
            out.append(block)
    return out


def is_name_line(text: str) -> bool:
    """A NAME line: a name as commands and entries are spelled (lowercase, UPPERCASE or
    with ``-_.()`` in it, not a Capitalised word opening prose: "Tips - read this
    first"), a dash, and what it does, with no final stop."""
    if not _NAME_LINE.match(text) or text.endswith(".") or len(text.split()) > _TITLE_WORDS:
        return False
    name = text.split(" ", 1)[0]
    return name.islower() or name.isupper() or any(c in name for c in "-_.()")


_TERM_MARK = re.compile(r"^-{1,2}\w|[=<>\[\]_/`]|\w\.\w")
TERM_WORDS = 8


def is_term(prompt: str) -> bool:
    """A definition list's term (an option, a setting, a name: ``-t, --list``,
    ``core.editor``) rather than a heading or a question: the answer under it names it,
    or "List the contents of an archive." would not say which option does."""
    words = prompt.split()
    spoken = [w for w in words if any(c.isalnum() for c in w)]  # not a grammar's "[ ]" or "|"
    return (0 < len(spoken) <= TERM_WORDS and not prompt.endswith("?")
            and any(_TERM_MARK.search(w) and not re.fullmatch(r"[\d.]+", w) for w in words))


# a term and its description on one line, in two columns: a man page's short option
# ("-t     sort by time, newest first"), a --help line ("-a, --all   do not ignore ...")
_TERM_COLUMN = re.compile(r"^(\s*)(\S+(?: \S+){0,3}?)\s{2,}(\S.*)$")


def _term_columns(block: str) -> list[str]:
    """A block cut after each term that shares its line with its description, so the
    term stands alone (a prompt) above the description it defines. Only the block's first
    line and option lines (``-x``) no deeper than the block's other lines: a justified
    line's double spaces are not a column."""
    lines = block.splitlines()
    if is_code(block) and len(lines) > 1:
        return [block]
    deeper = min((_indent(line) for line in lines[1:] if line.strip()), default=0)
    pieces: list[list[str]] = [[]]
    for i, line in enumerate(lines):
        m = _TERM_COLUMN.match(line)
        if m and is_term(m.group(2)) and (i == 0 or (m.group(2).startswith("-")
                                                     and _indent(line) < deeper)):
            pieces += [[m.group(1) + m.group(2)], [" " * m.end(2) + m.group(3)]]
        else:
            pieces[-1].append(line)
    return ["\n".join(p) for p in pieces if any(x.strip() for x in p)]


def _titled_pieces(block: str) -> list[str]:
    """A block of wrapped lines cut before and after each title line in it
    (``_is_title_line``), so the title stands alone (a prompt) above the text it titles."""
    lines = block.splitlines()
    if len(lines) < 2 or is_code(block):
        return [block]
    pieces: list[list[str]] = [[]]
    width = max(len(line.strip()) for line in lines)
    for i, line in enumerate(lines):
        if _is_title_line(line, lines[i + 1] if i + 1 < len(lines) else None, width):
            pieces += [[line], []]
        else:
            pieces[-1].append(line)
    return ["\n".join(p) for p in pieces if any(x.strip() for x in p)]


def _is_title_line(line: str, below: str | None, width: int) -> bool:
    """A numbered section title, or a short line standing out to the left of the text
    under it (a man page's NAME, an option's ``-c, --create``), that does not break off
    mid-sentence."""
    words = line.split()
    if not words or len(words) > _TITLE_LINE_WORDS or line.rstrip().endswith(_NO_TITLE_END) \
            or words[-1].lower() in STOP_WORDS or _BULLET.match(line):
        return False
    if _NUMBERED_TITLE.match(line):
        return True
    return (below is not None and bool(below.strip()) and _indent(below) >= _indent(line) + 2
            and len(line.strip()) <= _TITLE_WIDTH * width)


def answerable(unit: Unit) -> bool:
    """A sentence that can open an answer: prose, not a prompt, a real sentence."""
    if unit.name:
        return reads_as_prose(unit.text.split(" ", 1)[1])
    return (not unit.code and not unit.prompt and unit.words >= 4
            and (unit.text[-1:] in ".!:)" or unit.defines)  # "do not overwrite an existing file"
            and (unit.row or reads_as_prose(unit.text)))


SENTENCE_WORDS = 0.3  # share of plain lowercase words a sentence has at least


def is_example(block: str) -> bool:
    """A code block that can show how something is done: not a definition list's entry
    read as one block (a term line with prose under it: a man page's next option) and
    not a banner or heading ("SYNOPSIS", "==== FIXED BUGS ====")."""
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    if not lines:
        return False
    if len(lines) == 1 and re.fullmatch(r"[\s=*#~_-]*[A-Z][A-Z\s=*#~_-]*", lines[0]):
        return False
    return not (is_term(lines[0]) and any(reads_as_prose(line) for line in lines[1:]))


def reads_as_prose(text: str) -> bool:
    """Words as a sentence has them (two or more plain lowercase words, and
    ``SENTENCE_WORDS`` of all), not a page's footer ("GNU sed 4.9 January 2023
    SED(1)") or a usage synopsis ("cp [OPTION]... [-T] SOURCE DEST")."""
    words = text.split()
    plain = sum(1 for w in words if w.strip(".,;:!?'\"()[]`’“”").isalpha()
                and w.strip(".,;:!?'\"()[]`’“”").islower())
    return plain >= 2 and plain >= SENTENCE_WORDS * len(words)
