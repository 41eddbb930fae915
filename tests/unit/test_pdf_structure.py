"""PDF structure (indexing.pdf): headings from the outline or the fonts, running
headers and footers gone, hyphens mended, two columns in reading order, pages kept
per chunk and cited; scans read by OCR (Tesseract, as the set-up installs it)."""

from __future__ import annotations

import io

import pytest

from indexing.chunking import Chunker
from indexing.loaders import LoadOptions, load_bytes
from llama_rag.protocol import Hit
from qa.grounding import citation
from tests.helpers import PdfBox, PdfLine, make_pdf_pages, ruled_table

BODY = ("The archive tool keeps every member compressed on its own, so one damaged member "
        "does not spoil the others.")


def manual(outline: bool) -> bytes:
    """Four pages of a manual: a running header and a page number on each, a chapter
    title at the top of pages 1 and 3, body text below it."""
    pages = []
    for n in range(1, 5):
        lines = [PdfLine("Archive Tool Manual", y=760, size=9),
                 PdfLine(str(n), y=30, x=300, size=9)]
        y = 700
        if n in (1, 3):
            lines.append(PdfLine(f"{n // 2 + 1}. {'Installing' if n == 1 else 'Repairing'}",
                                 y=y, size=18, font="F2"))
            y -= 40
        for k in range(3):
            lines.append(PdfLine(f"Paragraph {k} of page {n}: {BODY[:60]}", y=y))
            lines.append(PdfLine(BODY[60:], y=y - 14))
            y -= 40
        pages.append(lines)
    marks = [("1. Installing", 0, 720), ("2. Repairing", 2, 720)] if outline else []
    return make_pdf_pages(pages, outline=marks)


@pytest.mark.parametrize("outline", [True, False], ids=["outline", "fonts"])
def test_chunks_carry_the_section_heading_not_page_n_and_no_running_lines(outline):
    [doc] = load_bytes(manual(outline), "manual.pdf")
    chunks = Chunker(60, 0, lambda t: len(t.split())).split(doc)
    heads = {c.heading[-1] for c in chunks if c.heading}
    assert heads == {"1. Installing", "2. Repairing"}
    assert not any(h.startswith("Page ") for c in chunks for h in c.heading)
    assert "Archive Tool Manual" not in doc.text  # the running header
    assert not any(line.strip().isdigit() for line in doc.text.splitlines())  # page numbers
    on_page_4 = [c for c in chunks if "page 4" in c.text]
    assert on_page_4 and all(c.metadata["pages"][-1] == 4 for c in on_page_4)
    assert all(c.heading[-1] == "2. Repairing" for c in on_page_4)


def test_paragraphs_are_rebuilt_from_lines_and_hyphens_mended():
    page = [PdfLine("A member that cannot be decom-", y=700),
            PdfLine("pressed is skipped and reported, and the floating-", y=686),
            PdfLine("point sizes are listed.", y=672),
            PdfLine("Another paragraph starts after a gap: decompressed data is checked.", y=636)]
    [doc] = load_bytes(make_pdf_pages([page]), "hyphen.pdf")
    assert ("A member that cannot be decompressed is skipped and reported, and the "
            "floating-point sizes are listed.") in doc.text  # "floatingpoint" is no word of it
    assert "\n\nAnother paragraph" in doc.text


def test_two_columns_are_read_column_by_column():
    left = [PdfLine(f"Left column line {k} ends here.", y=700 - 14 * k, x=50, size=10)
            for k in range(8)]
    right = [PdfLine(f"Right column line {k} ends.", y=700 - 14 * k, x=320, size=10)
             for k in range(8)]
    interleaved = [line for pair in zip(left, right) for line in pair]
    [doc] = load_bytes(make_pdf_pages([interleaved]), "columns.pdf")
    assert doc.text.index("Left column line 7") < doc.text.index("Right column line 0")


def test_a_citation_names_the_page_its_quote_is_on():
    pages = [[PdfLine(f"Page {n} says the answer is number {n}.", y=700)] for n in (1, 2, 3)]
    [doc] = load_bytes(make_pdf_pages(pages), "known.pdf")
    [chunk] = Chunker(200, 0, lambda t: len(t.split())).split(doc)
    assert chunk.metadata["pages"] == [1, 2, 3]
    hit = Hit(rank=1, score=1.0, source="known.pdf", title="t", text=chunk.text,
              chunk_id=chunk.id, heading=[], start=chunk.start, end=chunk.end,
              page=1, page_breaks=chunk.metadata["page_breaks"])
    for n in (1, 2, 3):
        assert citation(1, hit, f"Page {n} says the answer is number {n}.").page == n


def test_an_unreadable_page_is_reported_and_the_rest_indexed():
    def fails(images):
        from llama_rag.errors import LoadError
        return [LoadError("OCR failed: test") for _ in images]

    from indexing.pdf import load_pdf
    blank = make_pdf_pages([[PdfLine("Text on the first page, enough to count.", y=700)], []])
    [doc] = load_pdf(blank, "half.pdf", ocr_read=fails)
    assert "first page" in doc.text
    assert [(p.page, p.error) for p in doc.problems] == [(2, "OCR failed: test")]


def scanned(text_pdf: bytes) -> bytes:
    """An image-only PDF: each page rendered at 150 dpi and wrapped as a picture."""
    import pypdfium2 as pdfium

    images = [page.render(scale=150 / 72).to_pil().convert("RGB")
              for page in pdfium.PdfDocument(text_pdf)]
    out = io.BytesIO()
    images[0].save(out, "PDF", resolution=150, save_all=True, append_images=images[1:])
    return out.getvalue()


def test_a_scanned_pdf_is_read_by_ocr_marked_and_paged():
    lines = [PdfLine("Scanned contracts are read with Tesseract.", y=700, size=14),
             PdfLine("The second paragraph names the parties.", y=650, size=14)]
    scan = scanned(make_pdf_pages([lines, lines]))
    [doc] = load_bytes(scan, "scan.pdf")
    assert "Scanned contracts are read with Tesseract." in doc.text
    assert [p.number for p in doc.pages] == [1, 2] and all(p.ocr for p in doc.pages)
    chunk = Chunker(200, 0, lambda t: len(t.split())).split(doc)[0]
    assert chunk.metadata["ocr"] is True
    with pytest.raises(Exception, match="no text layer"):
        load_bytes(scan, "scan.pdf", LoadOptions(ocr="off"))


def test_an_image_file_is_read_by_ocr():
    import pypdfium2 as pdfium

    page = make_pdf_pages([[PdfLine("Receipt total forty two euros.", y=700, size=16)]])
    image = pdfium.PdfDocument(page)[0].render(scale=200 / 72).to_pil()
    out = io.BytesIO()
    image.save(out, "PNG")
    [doc] = load_bytes(out.getvalue(), "receipt.png")
    assert "Receipt total forty two euros." in doc.text
    assert doc.pages[0].ocr


def test_a_ruled_table_is_read_as_rows_of_named_cells_and_code_boxes_are_not_tables():
    from indexing.pdf import _ruled
    import pypdfium2 as pdfium

    table = ruled_table([["Type", "Storage size"], ["smallint", "2 bytes"],
                         ["bigint", "8 bytes"]])
    # code blocks: filled boxes at two indents, each with a frame of thin rules
    code = [PdfBox(72, 500, 400, 60), PdfBox(100, 400, 300, 60),
            PdfLine("make install", y=520, x=80, font="F3"),
            PdfLine("make check", y=420, x=108, font="F3")]
    prose = [PdfLine("Integer types differ in their range and storage size.", y=740)]
    pdf = make_pdf_pages([prose + table, prose + code])
    doc = pdfium.PdfDocument(pdf)
    assert [_ruled(doc[0]), _ruled(doc[1])] == [True, False]
    [loaded] = load_bytes(pdf, "types.pdf")
    assert "Type: bigint; Storage size: 8 bytes." in loaded.text
    assert "make install" in loaded.text


@pytest.mark.parametrize("caption", [False, True], ids=["continued", "new-table"])
def test_a_table_at_a_page_top_continues_the_last_one_only_without_text_above_it(caption):
    first = [PdfLine("Integer types differ in their range and storage size.", y=740)]
    first += ruled_table([["Type", "Storage size"], ["smallint", "2 bytes"]], top=120)
    second = [PdfLine("Table 2. Date order", y=770)] if caption else []
    second += ruled_table([["SQL, DMY", "day/month/year"], ["SQL, MDY", "month/day/year"]],
                          top=760)
    [doc] = load_bytes(make_pdf_pages([first, second]), "types.pdf")
    assert "Type: smallint; Storage size: 2 bytes." in doc.text
    if caption:  # its own table, its first row the header
        assert "SQL, DMY: SQL, MDY; day/month/year: month/day/year." in doc.text
        assert "Type: SQL" not in doc.text
    else:  # the last table's header named its cells
        assert "Type: SQL, MDY; Storage size: month/day/year." in doc.text
