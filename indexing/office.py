"""Slides, spreadsheets, e-books and e-mail as Documents: pptx (slide text and notes,
the slide number as the page), xlsx and ods (each sheet a table), epub (its chapters
in reading order), eml (the body, with its headers as metadata).

Each loader raises LoadError with the reason for a file it cannot read, as the other
loaders do; the pipeline lists it and goes on.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from pathlib import Path

from indexing.documents import Document, DocumentBuilder
from indexing.html import html_into
from indexing.tables import add_table
from llama_rag.errors import LoadError

MAX_SHEET_ROWS = 100_000  # rows read of one sheet; the rest is reported, not dropped silently
MAX_REPEAT = 1000  # an ODS row or cell "repeated" more often is padding, not data


def _finish(source: str, title: str, builder: DocumentBuilder, metadata: dict | None = None
            ) -> Document:
    text, sections = builder.build()
    if not text.strip():
        raise LoadError("no text found in the file")
    return Document(id=source, source=source, title=(title or "").strip() or Path(source).stem,
                    text=text, sections=sections, metadata=metadata or {}, pages=builder.pages)


def _broken(kind: str, exc: Exception) -> LoadError:
    return LoadError(f"corrupt or unsupported {kind}: {type(exc).__name__}: {exc}")


def load_pptx(data: bytes, source: str) -> list[Document]:
    from pptx import Presentation
    from pptx.exc import PackageNotFoundError

    try:
        deck = Presentation(io.BytesIO(data))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise _broken(".pptx", exc) from None
    builder = DocumentBuilder()
    for number, slide in enumerate(deck.slides, start=1):
        builder.page(number)
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text if title_shape is not None else ""
        builder.heading(1, title or f"Slide {number}")
        for shape in slide.shapes:
            if shape is title_shape:
                continue
            if shape.has_text_frame:
                for para in shape.text_frame.paragraphs:
                    builder.block("".join(run.text for run in para.runs))
            elif getattr(shape, "has_table", False) and shape.has_table:
                add_table(builder, [[c.text for c in row.cells] for row in shape.table.rows])
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame.text if \
                slide.notes_slide.notes_text_frame is not None else ""
            if notes.strip():
                builder.block(f"Notes: {notes.strip()}")
    return [_finish(source, deck.core_properties.title or "", builder)]


def load_xlsx(data: bytes, source: str) -> list[Document]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
        raise _broken(".xlsx", exc) from None
    sheets = []
    for sheet in book.worksheets:
        rows = []
        for row in sheet.iter_rows(values_only=True):
            if len(rows) >= MAX_SHEET_ROWS:
                raise LoadError(f"sheet {sheet.title!r} has more than {MAX_SHEET_ROWS} rows")
            rows.append(list(row))
        sheets.append((sheet.title, rows))
    book.close()
    return [_sheets(source, book.properties.title or "", sheets)]


def load_ods(data: bytes, source: str) -> list[Document]:
    from odf import teletype
    from odf.opendocument import load
    from odf.table import Table, TableCell, TableRow

    try:
        document = load(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _broken(".ods", exc) from None
    except Exception as exc:  # odfpy raises xml errors of several kinds
        raise _broken(".ods", exc) from None
    sheets = []
    for table in document.spreadsheet.getElementsByType(Table):
        rows = []
        for row in table.getElementsByType(TableRow):
            cells = []
            for cell in row.getElementsByType(TableCell):
                repeat = int(cell.getAttribute("numbercolumnsrepeated") or 1)
                cells += [teletype.extractText(cell)] * min(repeat, MAX_REPEAT)
            repeat = int(row.getAttribute("numberrowsrepeated") or 1)
            if any(c.strip() for c in cells):
                rows += [cells] * min(repeat, MAX_REPEAT)
            if len(rows) > MAX_SHEET_ROWS:
                raise LoadError(f"sheet {table.getAttribute('name')!r} has more than "
                                f"{MAX_SHEET_ROWS} rows")
        sheets.append((table.getAttribute("name") or "Sheet", rows))
    return [_sheets(source, "", sheets)]


def _sheets(source: str, title: str, sheets: list[tuple[str, list[list]]]) -> Document:
    """Each sheet a section headed by its name, its rows a table (the first row the header)."""
    builder = DocumentBuilder()
    for name, rows in sheets:
        if any(any(c not in (None, "") for c in row) for row in rows):
            builder.heading(1, name)
            add_table(builder, rows)
    return _finish(source, title, builder)


def load_epub(data: bytes, source: str) -> list[Document]:
    """The chapters in the order of the package's spine, read as HTML."""
    from lxml import etree


    try:
        book = zipfile.ZipFile(io.BytesIO(data))
        container = etree.fromstring(book.read("META-INF/container.xml"))
        opf_path = container.find(".//{*}rootfile").get("full-path")
        opf = etree.fromstring(book.read(opf_path))
    except (zipfile.BadZipFile, KeyError, AttributeError, etree.XMLSyntaxError) as exc:
        raise _broken(".epub", exc) from None
    base = posixpath.dirname(opf_path)
    items = {i.get("id"): i.get("href") for i in opf.iterfind(".//{*}manifest/{*}item")}
    title = opf.findtext(".//{http://purl.org/dc/elements/1.1/}title") or ""
    builder = DocumentBuilder()
    for ref in opf.iterfind(".//{*}spine/{*}itemref"):
        href = items.get(ref.get("idref"))
        if not href:
            continue
        try:
            page = book.read(posixpath.normpath(posixpath.join(base, href)))
        except KeyError:
            raise LoadError(f"epub spine names {href!r}, which the file does not hold") from None
        html_into(builder, page)
    return [_finish(source, title, builder)]


def load_eml(data: bytes, source: str) -> list[Document]:
    """The message's text (plain, or its HTML part read as HTML); From/To/Date/Subject
    as metadata, attachment names listed there too."""
    from email import policy
    from email.parser import BytesParser


    if not data.strip():
        raise LoadError("empty file")
    message = BytesParser(policy=policy.default).parsebytes(data)
    if not message.keys():
        raise LoadError("not an e-mail message (no headers)")
    metadata = {k.lower(): str(message[k]) for k in ("From", "To", "Cc", "Date", "Subject")
                if message[k]}
    attachments = [p.get_filename() for p in message.iter_attachments() if p.get_filename()]
    if attachments:
        metadata["attachments"] = attachments
    body = message.get_body(preferencelist=("plain", "html"))
    builder = DocumentBuilder()
    subject = metadata.get("subject", "")
    if subject:
        builder.heading(1, subject)
    if body is not None:
        try:
            content = body.get_content()
        except (LookupError, ValueError) as exc:
            raise LoadError(f"cannot decode the message body: {exc}") from None
        if body.get_content_subtype() == "html":
            html_into(builder, content.encode("utf-8"))
        else:
            for para in content.split("\n\n"):
                builder.block(para.rstrip())
    return [_finish(source, subject, builder, metadata)]
