"""Slides, spreadsheets, e-books, e-mail and tables (indexing.office, indexing.tables):
each read into text a question can find, a broken file listed with its reason."""

from __future__ import annotations

import io
import zipfile

import pytest

from indexing.chunking import Chunker
from indexing.loaders import load_bytes
from llama_rag.errors import LoadError

SPLIT = Chunker(200, 0, lambda t: len(t.split()))


def test_pptx_slides_are_pages_with_titles_and_notes():
    from pptx import Presentation

    deck = Presentation()
    for title, body, notes in [("Quarterly plan", "Ship the importer in March.", "Ask Dana."),
                               ("Risks", "The OCR engine may be slow.", "")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    [doc] = load_bytes(out.getvalue(), "plan.pptx")
    chunks = SPLIT.split(doc)
    risks = next(c for c in chunks if "OCR engine" in c.text)
    assert risks.heading == ["Risks"] and risks.metadata["pages"] == [2]
    assert "Notes: Ask Dana." in doc.text


def test_xlsx_sheets_are_tables_with_named_cells():
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "Prices"
    for row in [("Item", "Price", "Stock"), ("Lamp", 30, 4), ("Desk", 120, None)]:
        sheet.append(row)
    book.create_sheet("Empty")
    out = io.BytesIO()
    book.save(out)
    [doc] = load_bytes(out.getvalue(), "shop.xlsx")
    assert "Item: Lamp; Price: 30; Stock: 4" in doc.text
    assert "Item: Desk; Price: 120" in doc.text
    assert [s.heading for s in doc.sections if "Lamp" in doc.text[s.start:s.end]] == [["Prices"]]


def test_ods_sheets_are_tables():
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    ods = OpenDocumentSpreadsheet()
    table = Table(name="Rooms")
    for values in [("Room", "Seats"), ("Blue", "12"), ("Red", "40")]:
        row = TableRow()
        for v in values:
            cell = TableCell()
            cell.addElement(P(text=v))
            row.addElement(cell)
        table.addElement(row)
    ods.spreadsheet.addElement(table)
    out = io.BytesIO()
    ods.write(out)
    [doc] = load_bytes(out.getvalue(), "rooms.ods")
    assert "Room: Red; Seats: 40" in doc.text


def epub(chapters: list[tuple[str, str]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<container xmlns="urn:oasis:names:tc:opendocument:'
                   'xmlns:container"><rootfiles><rootfile full-path="OEBPS/book.opf"/>'
                   '</rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="c{i}.xhtml"/>' for i in range(len(chapters)))
        # the spine reads the chapters in reverse of the manifest: its order is the book's
        spine = "".join(f'<itemref idref="c{i}"/>' for i in reversed(range(len(chapters))))
        z.writestr("OEBPS/book.opf", '<package xmlns="http://www.idpf.org/2007/opf" xmlns:dc='
                   '"http://purl.org/dc/elements/1.1/"><metadata><dc:title>Field Guide'
                   f'</dc:title></metadata><manifest>{items}</manifest><spine>{spine}</spine>'
                   '</package>')
        for i, (head, body) in enumerate(chapters):
            z.writestr(f"OEBPS/c{i}.xhtml", f"<html><body><h1>{head}</h1><p>{body}</p>"
                       "</body></html>")
    return out.getvalue()


def test_epub_chapters_in_spine_order():
    [doc] = load_bytes(epub([("Owls", "Owls hunt at night."), ("Finches", "Finches eat seeds.")]),
                       "guide.epub")
    assert doc.title == "Field Guide"
    assert doc.text.index("Finches eat seeds.") < doc.text.index("Owls hunt at night.")


def test_eml_body_with_headers_as_metadata():
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ana@example.org", "ops@example.org", "Disk full"
    msg.set_content("The backup volume is full.\n\nDelete old snapshots first.")
    msg.add_attachment(b"log", maintype="text", subtype="plain", filename="df.txt")
    [doc] = load_bytes(msg.as_bytes(), "mail/disk.eml")
    assert doc.title == "Disk full" and "Delete old snapshots first." in doc.text
    assert doc.metadata["from"] == "ana@example.org" and doc.metadata["attachments"] == ["df.txt"]


def test_html_and_docx_tables_become_rows_of_their_own():
    html = (b"<html><body><main><h2>Limits</h2><p>Some limits apply.</p><table><tr><th>Setting"
            b"</th><th>Default</th></tr><tr><td>max_connections</td><td>100</td></tr></table>"
            b"</main></body></html>")
    [doc] = load_bytes(html, "limits.html")
    chunks = SPLIT.split(doc)
    row = next(c for c in chunks if "max_connections" in c.text)
    assert row.text == "Setting: max_connections; Default: 100." and row.heading == ["Limits"]

    import docx
    document = docx.Document()
    document.add_paragraph("Before the table.")
    table = document.add_table(rows=2, cols=2)
    for r, values in enumerate([("Name", "Role"), ("Ines", "Editor")]):
        for c, v in enumerate(values):
            table.cell(r, c).text = v
    document.add_paragraph("After the table.")
    out = io.BytesIO()
    document.save(out)
    [doc] = load_bytes(out.getvalue(), "team.docx")
    assert doc.text.index("Before") < doc.text.index("Name: Ines; Role: Editor") < doc.text.index("After")


@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".ods", ".epub", ".png"])
def test_a_corrupt_file_gets_a_reason(suffix):
    with pytest.raises(LoadError, match="corrupt or unsupported"):
        load_bytes(b"PK\x03\x04 not really a zip", "broken" + suffix)


def test_invisible_break_hints_do_not_split_words():
    html = ("<html><body><main><h2>Intervals\u00ad</h2><p>Mixed: P-1Y-2M3D\u200bT-4H-5M-6S, "
            "\ufeffsoft\u00adware.</p></main></body></html>").encode()
    [doc] = load_bytes(html, "intervals.html")
    assert "P-1Y-2M3DT-4H-5M-6S" in doc.text and "software" in doc.text
    assert not any(c in doc.text for c in "\u200b\u00ad\ufeff")
