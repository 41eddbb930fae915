from pathlib import Path

import pytest

from indexing.loaders import load_bytes, load_path
from llama_rag.errors import LoadError
from tests.helpers import make_docx, make_pdf

HTML = b"""<html><head><title>zipfile - Python docs</title><script>var x = 1;</script></head>
<body><div class="related" role="navigation"><a href="/">Index</a> | <a href="/next">next</a></div>
<div class="sphinxsidebar">Table of Contents sidebar text</div>
<div role="main" class="body">
<h1>zipfile &#8212; Work with ZIP archives<a class="headerlink" href="#z">&#182;</a></h1>
<p>The ZIP file format is a common
archive standard.</p>
<h2>ZipFile Objects</h2><p>class <code>ZipFile</code>(file) opens a ZIP file.</p>
<pre>with ZipFile('spam.zip') as myzip:
    myzip.read('eggs.txt')</pre>
</div><footer>Copyright footer</footer></body></html>"""


def test_html_keeps_content_drops_chrome_and_records_headings():
    [doc] = load_bytes(HTML, "library/zipfile.html")
    assert doc.title == "zipfile \u2014 Work with ZIP archives"
    assert "common archive standard" in doc.text
    assert "    myzip.read('eggs.txt')" in doc.text  # code keeps its indentation
    assert "```" not in doc.text  # several lines read as code by their shape: no fences
    for chrome in ("var x", "Index", "sidebar text", "footer", "\u00b6"):
        assert chrome not in doc.text
    headings = [s.heading for s in doc.sections]
    assert headings == [["zipfile \u2014 Work with ZIP archives"],
                        ["zipfile \u2014 Work with ZIP archives", "ZipFile Objects"]]
    second = doc.sections[1]
    assert doc.text[second.start:second.end].startswith("ZipFile Objects")


ASCIIDOC = b"""<html><head><title>git-clean(1)</title></head><body class="manpage">
<div id="header"><h1>git-clean(1) Manual Page</h1><h2>NAME</h2>
<div class="sectionbody"><p>git-clean - Remove untracked files from the working tree</p></div></div>
<div id="content"><div class="sect1"><h2 id="_description">DESCRIPTION</h2>
<div class="sectionbody"><p>Cleans the working tree.</p></div></div></div>
<div id="footer">Last updated 2023-01-01</div></body></html>"""


def test_html_title_block_before_the_main_container_is_kept():
    """AsciiDoc puts the page's h1 and its NAME line in #header, before #content."""
    [doc] = load_bytes(ASCIIDOC, "git-clean.html")
    assert doc.title == "git-clean(1) Manual Page"
    assert doc.text.index("Remove untracked files") < doc.text.index("Cleans the working tree")
    assert "Last updated" not in doc.text
    assert [s.heading for s in doc.sections][-1] == ["git-clean(1) Manual Page", "DESCRIPTION"]
    menu = "".join(f"<a href='/p{i}'>Product number {i}</a> " for i in range(40))
    banner = ASCIIDOC.replace(b"<h2>NAME</h2>", f"<p>{menu}</p><h2>NAME</h2>".encode())
    [doc] = load_bytes(banner, "site.html")  # a site banner with menus is not a title block
    assert "Product number" not in doc.text and "Cleans the working tree" in doc.text


RELEASE = b"""<html><body><div id="content">
<div class="paragraph"><p>Apply a tag to the tip of <em>master</em>:</p></div>
<div class="paragraph"><p><code>git tag -s -m "Git X.Y.Z" vX.Y.Z master</code></p></div>
<div class="paragraph"><p>Then push <code>master</code> and the tag.</p></div>
<div class="literalblock"><div class="content"><pre><code>export VISUAL=nano</code></pre></div></div>
</div></body></html>"""


def test_html_literal_blocks_are_fenced_as_code():
    """A one-line <pre>, or a paragraph that is one code element, is literal whatever it
    looks like: a command without a "$ " prompt must not read as a sentence."""
    [doc] = load_bytes(RELEASE, "gitworkflows.html")
    assert '```\ngit tag -s -m "Git X.Y.Z" vX.Y.Z master\n```' in doc.text
    assert "```\nexport VISUAL=nano\n```" in doc.text
    assert "Then push master and the tag." in doc.text  # inline code stays prose


def test_markdown_headings_ignore_code_fences():
    md = b"# Guide\n\nIntro text.\n\n## Install\n\n```\n# not a heading\npip install x\n```\n"
    [doc] = load_bytes(md, "guide.md")
    assert doc.title == "Guide"
    assert [s.heading for s in doc.sections] == [["Guide"], ["Guide", "Install"]]
    assert "# not a heading" in doc.text


def test_text_paragraphs():
    [doc] = load_bytes(b"First para.\n\nSecond para.\n", "notes.txt")
    assert doc.text == "First para.\n\nSecond para."
    assert doc.title == "notes"


def test_pdf_text_is_extracted_per_page():
    [doc] = load_bytes(make_pdf("Grounded answers need sources"), "paper.pdf")
    assert "Grounded answers need sources" in doc.text
    assert [p.number for p in doc.pages] == [1]


def test_docx_headings(tmp_path: Path):
    make_docx(tmp_path / "a.docx", "Handbook", ["Holidays are in August.", "Ask HR."])
    [doc] = load_path(tmp_path / "a.docx", "a.docx")
    assert doc.title == "Handbook"
    assert "Holidays are in August." in doc.text


def test_jsonl_records_become_documents_with_metadata():
    data = b'{"text": "alpha body", "title": "A", "lang": "en"}\n\n{"text": "beta body"}\n'
    docs = load_bytes(data, "rows.jsonl")
    assert [d.id for d in docs] == ["rows.jsonl#1", "rows.jsonl#3"]
    assert docs[0].metadata == {"title": "A", "lang": "en"} and docs[0].title == "A"


@pytest.mark.parametrize("name,data,reason", [
    ("empty.txt", b"", "empty file"),
    ("blank.md", b"  \n\n ", "empty file"),
    ("bin.txt", b"\x7fELF\x00\x00\x01binary", "binary"),
    ("latin1.txt", "caf\u00e9".encode("latin-1"), "not valid UTF-8"),
    ("broken.pdf", b"%PDF-1.4\n this is not really a pdf", "corrupt or unsupported PDF"),
    ("broken.docx", b"PK\x03\x04 not a zip", "corrupt or unsupported .docx"),
    ("bad.jsonl", b'{"text": "ok"}\n{not json}\n', "invalid JSON"),
    ("nofield.jsonl", b'{"body": "x"}\n', "no non-empty string field 'text'"),
    ("nav-only.html", b"<html><body><nav>menu</nav></body></html>", "no text found"),
])
def test_bad_files_raise_load_error_with_reason(name, data, reason):
    with pytest.raises(LoadError, match=reason):
        load_bytes(data, name)


def test_unreadable_and_oversized_files(tmp_path: Path):
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "missing")
    with pytest.raises(LoadError, match="cannot read"):
        load_path(tmp_path / "dangling.txt", "dangling.txt")
    (tmp_path / "big.txt").write_text("x " * 1000)
    with pytest.raises(LoadError, match="too large"):
        load_path(tmp_path / "big.txt", "big.txt", max_bytes=100)
