"""A PDF page's text as lines with their place and font, read with pypdfium2.

PDFium gives characters in content order with their boxes and fonts; this module
groups them into lines and puts two-column pages into reading order. What the lines
mean (paragraphs, headings, running headers) is indexing.pdf's job.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

_MONO_HINTS = ("mono", "courier", "cmtt", "typewriter", "consol", "sfmono", "menlo", "sftt",
               "inconsolata", "nimbusmon", "dejavusansmono")


GUTTER_EMS = 2.5  # a horizontal gap this many character heights wide parts two lines
FONT_SAMPLES = 6  # characters of a line whose fonts decide whether it is bold or code


@dataclass
class Line:
    """One line of text on a page; y grows upwards (PDF space), ``top`` > ``bottom``."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    size: float  # font size of most of its characters
    bold: bool
    mono: bool

    @property
    def words(self) -> int:
        return len(self.text.split())


@dataclass
class PageText:
    number: int  # 1-based
    width: float
    height: float
    lines: list[Line]
    chars: int  # characters of the text layer (0: a scan, or a drawing)


def page_lines(page, number: int) -> PageText:
    """The lines of one pypdfium2 page, in reading order."""
    import pypdfium2.raw as raw

    width, height = page.get_size()
    textpage = page.get_textpage()
    # PDFium's calls bound once, one set of out-parameters reused: this loop runs once
    # per character, and the helpers' per-call allocations were most of its time.
    tp = textpage.raw
    unicode, generated, size = raw.FPDFText_GetUnicode, raw.FPDFText_IsGenerated, raw.FPDFText_GetFontSize
    charbox = raw.FPDFText_GetCharBox
    box = [ctypes.c_double() for _ in range(4)]
    refs = [ctypes.byref(b) for b in box]
    try:
        count = textpage.count_chars()
        lines: list[Line] = []
        line = _Open()
        for i in range(count):
            ch = chr(unicode(tp, i) or 32)
            if ch in "\r\n":
                line = line.close(lines, textpage, raw)
                continue
            if generated(tp, i) == 1:
                if ch == " " and line.chars:
                    line.chars.append((" ",) + line.chars[-1][1:])
                continue
            if not charbox(tp, i, *refs):  # left, right, bottom, top
                continue
            left, right, bottom, top = (b.value for b in box)
            if ch.strip() and line.starts_new(left, top):
                line = line.close(lines, textpage, raw)
            line.add((ch, left, right, top, bottom, size(tp, i), i))
        line.close(lines, textpage, raw)
    finally:
        textpage.close()
    return PageText(number, width, height, reading_order(lines, width), count)


class _Open:
    """The characters of the line being read, with its lowest point and last glyph."""

    def __init__(self) -> None:
        self.chars: list[tuple[str, float, float, float, float, float, int]] = []
        self.floor = float("inf")
        self.last: tuple | None = None

    def add(self, char: tuple) -> None:
        self.chars.append(char)
        if char[0].strip():
            self.floor = min(self.floor, char[4])
            self.last = char

    def starts_new(self, left: float, top: float) -> bool:
        """A character that starts a new line PDFium did not mark: wholly below the
        line's lowest point so far (a quote mark sits high, a comma low), far back to
        the left of the last character and lower, or across a gutter (the next column)."""
        last = self.last
        if last is None:
            return False
        height = max(last[3] - last[4], last[5] * 0.7, 1.0)  # a period's box is tiny
        return (top < self.floor or (left < last[1] - 4 * height and top < last[4])
                or left > last[2] + GUTTER_EMS * height)

    def close(self, lines: list[Line], textpage, raw) -> _Open:
        line = _line(self.chars, textpage, raw)
        if line is not None:
            lines.append(line)
        return _Open()


def _line(chars, textpage, raw) -> Line | None:
    text = " ".join("".join(c[0] for c in chars).split())
    visible = [c for c in chars if c[0].strip()]
    if not text or not visible:
        return None
    sizes: dict[float, int] = {}
    for c in visible:
        sizes[round(c[5], 1)] = sizes.get(round(c[5], 1), 0) + 1
    size = max(sizes, key=sizes.get)
    sample = [c[6] for c in visible[::max(1, len(visible) // FONT_SAMPLES)]]
    names = [_font_name(textpage, raw, i).lower() for i in sample]
    bold = sum(raw.FPDFText_GetFontWeight(textpage.raw, i) >= 600 or "bold" in n or "cmbx" in n
               for i, n in zip(sample, names))
    mono = sum(any(h in n for h in _MONO_HINTS) for n in names)
    return Line(text, min(c[1] for c in visible), max(c[2] for c in visible),
                max(c[3] for c in visible), min(c[4] for c in visible), size,
                bold=2 * bold > len(sample), mono=2 * mono > len(sample))


def _font_name(textpage, raw, index: int) -> str:
    buf = ctypes.create_string_buffer(128)
    flags = ctypes.c_int()
    raw.FPDFText_GetFontInfo(textpage.raw, index, buf, 128, ctypes.byref(flags))
    return buf.value.decode("latin-1", "replace")


GUTTER = 0.04  # share of the page width a column's edge may pass the middle


def reading_order(lines: list[Line], width: float) -> list[Line]:
    """Two-column text read column by column: between lines that span the middle, the
    left column's lines top to bottom, then the right's. One column stays as it is."""
    mid, slack = width / 2, width * GUTTER
    left = {id(ln) for ln in lines if ln.x1 <= mid + slack}
    right = {id(ln) for ln in lines if ln.x0 >= mid - slack and id(ln) not in left}
    if len(left) < 5 or len(right) < 5:
        return lines
    spanning = sorted((ln for ln in lines if id(ln) not in left and id(ln) not in right),
                      key=lambda ln: -ln.top)
    ordered: list[Line] = []
    above = float("inf")
    for cut in spanning + [None]:
        below = cut.top if cut is not None else float("-inf")
        band = [ln for ln in lines if below < ln.top <= above and id(ln) not in
                {id(c) for c in spanning}]
        ordered += sorted((ln for ln in band if id(ln) in left), key=lambda ln: -ln.top)
        ordered += sorted((ln for ln in band if id(ln) in right), key=lambda ln: -ln.top)
        if cut is not None:
            ordered.append(cut)
            above = cut.top
    return ordered
