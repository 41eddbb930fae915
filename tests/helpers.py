"""Small builders of real files for tests (no fixtures committed as binaries)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def make_pdf(text: str) -> bytes:
    """A minimal valid one-page PDF whose text layer is ``text``: one line per line of
    it, 12 pt Helvetica, a blank line a paragraph gap."""
    lines, y = [], 720.0
    for line in text.split("\n"):
        if line.strip():
            lines.append(PdfLine(line, y=y))
        y -= 14 if line.strip() else 10
    return make_pdf_pages([lines])


FONTS = {"F1": "Helvetica", "F2": "Helvetica-Bold", "F3": "Courier"}


class PdfLine:
    """One line of a test PDF: its text, where it starts, its size and font (FONTS)."""

    def __init__(self, text: str, y: float, x: float = 72.0, size: float = 12.0,
                 font: str = "F1") -> None:
        self.text, self.y, self.x, self.size, self.font = text, y, x, size, font

    def stream(self) -> bytes:
        escaped = self.text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return (f"BT /{self.font} {self.size} Tf {self.x} {self.y} Td ({escaped}) Tj ET\n"
                .encode("latin-1"))


class PdfBox:
    """A filled rectangle on a test PDF page: a rule when thin, a code block's
    background or a frame when not."""

    def __init__(self, x: float, y: float, width: float, height: float) -> None:
        self.x, self.y, self.width, self.height = x, y, width, height

    def stream(self) -> bytes:
        return f"0.5 g {self.x} {self.y} {self.width} {self.height} re f 0 g\n".encode()


def ruled_table(rows: list[list[str]], x: float = 72.0, top: float = 700.0,
                width: float = 150.0, height: float = 20.0) -> list["PdfLine | PdfBox"]:
    """A table drawn as a word processor draws one: a rule above and below each row and
    between the columns, each cell's text inside its box."""
    cols = len(rows[0])
    items: list[PdfLine | PdfBox] = []
    for r in range(len(rows) + 1):
        items.append(PdfBox(x, top - r * height, cols * width, 0.8))
    for c in range(cols + 1):
        items.append(PdfBox(x + c * width, top - len(rows) * height, 0.8, len(rows) * height))
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            items.append(PdfLine(cell, y=top - (r + 1) * height + 6, x=x + c * width + 4, size=10))
    return items


def make_pdf_pages(pages: list[list["PdfLine | PdfBox"]], outline: list[tuple[str, int, float]] = (),
                   title: str | None = None) -> bytes:
    """A PDF of US-letter pages with these lines, and bookmarks (title, 0-based page,
    y of the destination)."""
    n = len(pages)
    fonts = 3 + 2 * n  # object numbers: 1 catalog, 2 pages, then page/content pairs
    objects: list[bytes] = [b"", b""]
    kids = []
    font_refs = " ".join(f"/{k} {fonts + i} 0 R" for i, k in enumerate(FONTS))
    for i, lines in enumerate(pages):
        page_no, content_no = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page_no} 0 R")
        content = b"".join(line.stream() for line in lines)
        objects.append((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents "
                        f"{content_no} 0 R /Resources << /Font << {font_refs} >> >> >>").encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    for base in FONTS.values():
        objects.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /{base} >>".encode())
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {n} >>".encode()
    catalog = "<< /Type /Catalog /Pages 2 0 R"
    if outline:
        first = len(objects) + 1
        objects.append(f"<< /Type /Outlines /First {first + 1} 0 R /Last {first + len(outline)} "
                       f"0 R /Count {len(outline)} >>".encode())
        for k, (name, page, y) in enumerate(outline):
            me = first + 1 + k
            links = (f" /Prev {me - 1} 0 R" if k else "") + (
                f" /Next {me + 1} 0 R" if k + 1 < len(outline) else "")
            objects.append(f"<< /Title ({name}) /Parent {first} 0 R{links} /Dest "
                           f"[{3 + 2 * page} 0 R /XYZ 72 {y} 0] >>".encode())
        catalog += f" /Outlines {first} 0 R"
    info = None
    if title:
        objects.append(f"<< /Title ({title}) >>".encode())
        info = len(objects)
    objects[0] = (catalog + " >>").encode()
    return _pdf(objects, info=info)


GUIDE_PAGES = [  # (chapter, sentences) of the field guide, one chapter a page
    ("Calming a colony", ["A cool smoker puff at the entrance calms a colony before the hive "
                          "is opened.", "Smoke masks the alarm scent the guard bees release."]),
    ("Swarm season", ["A colony that runs out of room raises new queens and swarms in late "
                      "spring.", "Adding a second brood box early in spring gives the colony "
                      "room and delays swarming."]),
    ("Winter care", ["A strong colony needs about twenty kilograms of stored honey to last the "
                     "winter.", "Mouse guards fitted in autumn keep mice out of the hive."]),
]


def field_guide_pdf() -> bytes:
    """A three-page PDF manual with an outline, a running header and page numbers: the
    page of every sentence is known (GUIDE_PAGES)."""
    pages, outline = [], []
    for n, (chapter, sentences) in enumerate(GUIDE_PAGES):
        lines = [PdfLine("Beekeeping Field Guide", y=760, size=9),
                 PdfLine(str(n + 1), y=30, x=300, size=9),
                 PdfLine(chapter, y=700, size=18, font="F2")]
        y = 660
        for sentence in sentences:
            lines.append(PdfLine(sentence, y=y, size=10))
            y -= 30
        pages.append(lines)
        outline.append((chapter, n, 720))
    return make_pdf_pages(pages, outline=outline, title="Beekeeping Field Guide")


def make_docx(path: Path, title: str, paragraphs: Iterable[str]) -> None:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for p in paragraphs:
        document.add_paragraph(p)
    document.save(str(path))


def hash_vectors(texts: Iterable[str], dim: int = 16) -> np.ndarray:
    """Deterministic unit vectors from text hashes: a fake embedder for unit tests."""
    rows = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
        rows.append(v / np.linalg.norm(v))
    return np.array(rows, dtype=np.float32).reshape(-1, dim)


def write_corpus(root: Path, files: dict[str, Any]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


def _pdf(objects: list[bytes], root: int = 1, info: int | None = None) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    extra = b" /Info %d 0 R" % info if info else b""
    out += b"trailer\n<< /Size %d /Root %d 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, extra, xref)
    return bytes(out)


def hostile_pdfs() -> dict[str, bytes]:
    """PDFs that break parsers: truncated, a page tree that contains itself, random
    bytes after the header, and a content stream that inflates to 128 MB."""
    import zlib

    bomb = zlib.compress(b" " * (128 << 20), 9)
    return {
        "pdf/truncated.pdf": make_pdf("cut short")[:180],
        "pdf/page-loop.pdf": _pdf([b"<< /Type /Catalog /Pages 2 0 R >>",
                                   b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]),
        "pdf/garbage.pdf": b"%PDF-1.7\n" + bytes(range(256)) * 64,
        "pdf/inflate-bomb.pdf": _pdf([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb
            + b"\nendstream"]),
    }


def write_hostile_corpus(root: Path, outside: Path) -> dict[str, str]:
    """A corpus of everything that should not stop indexing: returns {source: a word of
    the reason it must be listed with}. One good file sits 1,200 folders deep."""
    import os

    expected = {"bad/binary.txt": "binary", "bad/empty.md": "empty",
                "bad/latin1.txt": "UTF-8", "bad/not-a-zip.docx": "docx",
                "bad/bad-lines.jsonl": "JSON", "bad/huge.txt": "too large",
                "links/loop-a.txt": "loop", "links/loop-b.txt": "loop",
                "links/dangling.md": "broken symlink", "links/passwd.txt": "outside",
                "bad/pipe.txt": "not a regular file"}
    expected.update({name: "PDF" for name in hostile_pdfs()})
    expected["pdf/inflate-bomb.pdf"] = "no text"  # pypdf caps inflation; no text is left
    write_corpus(root, {"bad/binary.txt": b"\x7fELF\x00\x00\x01\x02",
                        "bad/empty.md": b"",
                        "bad/latin1.txt": "na\u00efve caf\u00e9".encode("latin-1"),
                        "bad/not-a-zip.docx": b"PK\x03\x04 definitely not a zip",
                        "bad/bad-lines.jsonl": b'{"text": "fine"\n{broken\n',
                        "good/ok.md": "# Fine\n\nThis file is fine and gets indexed.",
                        **hostile_pdfs()})
    with open(root / "bad/huge.txt", "wb") as fh:  # sparse: 60 MB on paper, no disk
        fh.truncate(60 * 1024 * 1024)
    os.mkfifo(root / "bad/pipe.txt")
    (root / "links").mkdir()
    os.symlink(root / "links/loop-b.txt", root / "links/loop-a.txt")
    os.symlink(root / "links/loop-a.txt", root / "links/loop-b.txt")
    os.symlink(root / "links/missing.md", root / "links/dangling.md")
    (outside / "secret.txt").write_text("a secret outside the corpus")
    os.symlink(outside / "secret.txt", root / "links/passwd.txt")
    os.symlink(root, root / "links/self")  # a folder loop: not followed
    deep = root
    for _ in range(1200):  # one at a time: mkdir(parents=True) itself recurses too deep
        deep = deep / "d"
        os.mkdir(deep)
    (deep / "deep.md").write_text("# Deep\n\nA file twelve hundred folders down.")
    return expected


def remove_deep_folders(root: Path) -> None:
    """Delete the 1,200-deep chain iteratively: shutil.rmtree (and pytest's clean-up of old
    temporary folders) recurses once per level and fails past ~1,000."""
    import shutil

    bottom = root
    while (bottom / "d").is_dir():
        bottom = bottom / "d"
    while bottom != root:
        shutil.rmtree(bottom)  # shallow by now
        bottom = bottom.parent


def whitespace_tokens(text: str) -> int:
    """A tokenizer-free token counter (words) for chunking tests."""
    return len(text.split())
