"""An HTML page's main content fed to a DocumentBuilder: headings, paragraphs, code
blocks and data tables, without the site's chrome (navigation, sidebars, footers).
Read for .html files, epub chapters and the HTML part of an e-mail."""

from __future__ import annotations

from indexing.api_entries import is_api_page
from indexing.documents import DocumentBuilder
from indexing.tables import add_table
from indexing.text import decode_text, fenced
from llama_rag.errors import LoadError

_CHROME = {"script", "style", "noscript", "nav", "header", "footer", "aside", "form",
           "iframe", "svg", "button", "template", "head"}
_CHROME_ROLES = {"navigation", "search", "banner", "contentinfo"}
_CHROME_CLASSES = {"sphinxsidebar", "related", "footer", "headerlink", "breadcrumb", "breadcrumbs",
                   "sidebar", "navbar", "toc", "skip-link", "mobile-nav",
                   "navheader", "navfooter"}  # DocBook XSL's Prev | Up | Next tables
_CHROME_IDS = {"sidebar", "toc"}
_LITERAL = {"code", "kbd", "samp", "tt"}
_BLOCKS = {"p", "pre", "li", "dt", "dd", "tr", "blockquote", "table", "div", "section", "ul",
           "ol", "dl", "figure", "figcaption", "br", "hr", "article", "main", "td", "th"}
_TITLE_BLOCK_CHARS = 600  # the most text a page's title block before its main container holds
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}


def _is_chrome(el) -> bool:
    if el.tag in _CHROME:
        return True
    classes = (el.get("class") or "").split()
    return (el.get("role") in _CHROME_ROLES or el.get("id") in _CHROME_IDS
            or not _CHROME_CLASSES.isdisjoint(classes))


def _main_rank(el) -> int:
    """0 for the page's main content container, higher for weaker candidates."""
    if el.tag == "main" or el.get("role") == "main":
        return 0
    if el.tag == "article":
        return 1
    if "body" in (el.get("class") or "").split() or el.get("id") == "content":
        return 2
    return 9


class _HtmlText:
    """Walks an lxml tree, feeding headings and paragraphs to a DocumentBuilder."""

    def __init__(self, builder: DocumentBuilder) -> None:
        self.builder = builder
        self.title = ""
        self._inline: list[str] = []

    def flush(self) -> None:
        text = " ".join("".join(self._inline).split())
        self._inline.clear()
        self.builder.block(text)

    def walk(self, el) -> None:
        if not isinstance(el.tag, str):  # comment or processing instruction
            self._inline.append(el.tail or "")
            return
        if el.tag in _HEADINGS:
            self.flush()
            label = " ".join(el.text_content().replace("\u00b6", "").split())
            self.title = self.title or (label if el.tag == "h1" else "")
            self.builder.heading(_HEADINGS[el.tag], label)
        elif el.tag == "pre" or _code_paragraph(el):
            self.flush()
            literal = el.text_content().strip("\n").rstrip()
            # one line is fenced: several read as code by their shape, and fences in
            # every example would shift chunk boundaries for nothing
            self.builder.block(fenced(literal) if literal.strip() and "\n" not in literal
                               else literal)
        elif el.tag == "table" and (rows := _data_table(el)) is not None:
            self.flush()
            add_table(self.builder, rows[0], header=rows[1])
        else:
            block = el.tag in _BLOCKS
            if block:
                self.flush()
            self._inline.append(el.text or "")
            for child in el:
                self.walk(child)
            if block:
                self.flush()
        self._inline.append(el.tail or "")


def _code_paragraph(el) -> bool:
    """A paragraph that is one inline code element and nothing else (AsciiDoc sets a
    command apart as ``<p><code>git tag -s v1.0</code></p>``): literal, as a ``<pre>`` is."""
    kids = [c for c in el if isinstance(c.tag, str)]
    return (el.tag == "p" and len(kids) == 1 and kids[0].tag in _LITERAL
            and not (el.text or "").strip() and not (kids[0].tail or "").strip())


def _data_table(table) -> tuple[list[list[str]], bool] | None:
    """(rows of cell texts, whether the first row is a header) of a table of data, or
    None for a table used for layout (nested tables, a single column or row)."""
    if table.find(".//table") is not None:
        return None
    trs = [tr for tr in table.iter("tr")]
    rows = [[" ".join(c.text_content().split()) for c in tr if c.tag in ("td", "th")]
            for tr in trs]
    if len(rows) < 2 or max(len(r) for r in rows) < 2:
        return None
    first = [c for c in trs[0] if c.tag in ("td", "th")]
    header = bool(first) and (all(c.tag == "th" for c in first)
                              or trs[0].getparent().tag == "thead")
    return rows, header


def _title_block(root, main):
    """The block before ``main`` that holds the page's ``h1`` when ``main`` holds none
    (AsciiDoc's ``#header``: the title and the NAME line "git-clean - Remove untracked
    files from the working tree" stand before ``#content``), or None."""
    h1 = root.find(".//h1")
    if h1 is None or main.find(".//h1") is not None:
        return None
    shared = set(main.iterancestors())
    block = h1  # climbs to the child of the nearest ancestor it shares with ``main``
    for parent in h1.iterancestors():
        if parent in shared:
            break
        block = parent
    else:
        return None  # ``main`` is the root
    siblings = list(block.getparent())
    branch = next(k for k, el in enumerate(siblings) if el is main or el in shared)
    if siblings.index(block) > branch:
        return None
    # a title and a line or two, not a site banner with its menus
    return block if len(" ".join(block.text_content().split())) <= _TITLE_BLOCK_CHARS else None


def html_into(builder: DocumentBuilder, data: bytes) -> tuple[str, bool]:
    """Feed an HTML page's main content to ``builder``: (its title, whether it is an API
    reference page). Also reads the chapters of an epub and the HTML part of an e-mail."""
    from lxml import etree, html

    text = decode_text(data)
    try:
        root = html.document_fromstring(text.encode("utf-8"),
                                        parser=html.HTMLParser(encoding="utf-8"))
    except (etree.ParserError, ValueError) as exc:
        raise LoadError(f"cannot parse HTML: {exc}") from None
    page_title = " ".join((root.findtext(".//title") or "").split())
    chrome, best, rank = [], None, 9
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if _is_chrome(el):
            chrome.append(el)
        elif (r := _main_rank(el)) < rank:
            best, rank = el, r
    for el in chrome:
        el.drop_tree()  # keeps the tail text, which belongs to the parent
    walker = _HtmlText(builder)
    main = best if best is not None and best.getparent() is not None else root
    lead = _title_block(root, main)
    if lead is not None:
        walker.walk(lead)
    walker.walk(main)
    walker.flush()
    return walker.title or page_title, is_api_page(root)


