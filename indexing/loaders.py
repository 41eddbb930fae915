"""Turn a file into Documents: txt, md, html, pdf, jsonl, docx.

Every failure is a LoadError with a reason a person can act on (binary, empty,
not UTF-8, corrupt PDF ...); the pipeline records it per file and goes on.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from indexing import office
from indexing.api_entries import API_REFERENCE
from indexing.documents import Document, DocumentBuilder, PageProblem, property_metadata
from indexing.tables import add_table
from indexing.html import html_into
from indexing.text import FENCE, PARAGRAPH_BREAK, decode_text
from llama_rag.errors import LoadError
from llama_rag.jsonl import records

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class LoadOptions:
    """What a loader needs beyond the bytes (IndexSettings and IngestSettings decide)."""

    jsonl_text_field: str = "text"
    ocr: str = "auto"  # auto: OCR pages without a text layer; off; force: every page
    ocr_language: str = "eng"


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _finish(source: str, title: str, builder: DocumentBuilder, doc_id: str | None = None,
            metadata: dict | None = None) -> Document:
    text, sections = builder.build()
    if not text.strip():
        raise LoadError("no text found in the file")
    return Document(id=doc_id or source, source=source, title=title.strip() or Path(source).name,
                    text=text, sections=sections, metadata=metadata or {})


def load_text(data: bytes, source: str) -> list[Document]:
    text = decode_text(data)
    builder = DocumentBuilder()
    for para in PARAGRAPH_BREAK.split(text):
        builder.block(para.rstrip())
    return [_finish(source, Path(source).stem, builder)]


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?\r?\n)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)


def front_matter(text: str) -> tuple[dict, str]:
    """A Markdown file's YAML front matter (its metadata: title, tags, dates, access) and
    the text after it; a block that is not a YAML mapping is left as text."""
    import yaml

    m = _FRONT_MATTER.match(text)
    if not m:
        return {}, text
    try:
        meta = yaml.safe_load(m.group(1))
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    plain = json.loads(json.dumps({str(k): v for k, v in meta.items()}, default=str))
    return plain, text[m.end():]


def load_markdown(data: bytes, source: str) -> list[Document]:
    meta, text = front_matter(decode_text(data))
    builder = DocumentBuilder()
    title, para, in_fence = "", [], False

    def flush() -> None:
        builder.block("\n".join(para).rstrip())
        para.clear()

    for line in text.splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _MD_HEADING.match(line)
        if m:
            flush()
            level, heading = len(m.group(1)), m.group(2)
            title = title or (heading if level == 1 else "")
            builder.heading(level, heading)
        elif not line.strip() and not in_fence:
            flush()
        else:
            para.append(line.rstrip())
    flush()
    return [_finish(source, str(meta.get("title") or title or Path(source).stem), builder,
                    metadata=meta)]


def load_html(data: bytes, source: str) -> list[Document]:
    builder = DocumentBuilder()
    title, api = html_into(builder, data)
    return [_finish(source, title or Path(source).stem, builder,
                    metadata={"profile": API_REFERENCE} if api else None)]


def load_pdf(data: bytes, source: str, options: LoadOptions) -> list[Document]:
    from indexing import ocr, pdf

    def read(images: list) -> list:
        return ocr.read_images(images, options.ocr_language)

    return pdf.load_pdf(data, source, pdf.PdfOptions(options.ocr, options.ocr_language),
                        None if options.ocr == "off" else read)


def load_image(data: bytes, source: str, options: LoadOptions) -> list[Document]:
    """A scan or a photo of text: OCR each frame (a TIFF's pages) as a page."""
    from indexing import ocr

    if options.ocr == "off":
        raise LoadError("an image needs OCR and ingest.ocr is off")
    builder, problems = DocumentBuilder(), []
    frames = ocr.open_image(data)
    for number, text in enumerate(ocr.read_images(frames, options.ocr_language), start=1):
        if isinstance(text, LoadError):
            if len(frames) == 1:
                raise text
            problems.append(PageProblem(page=number, error=text.message))
            continue
        if not text:
            problems.append(PageProblem(page=number, error="OCR found no text"))
        builder.page(number, ocr=True)
        for para in PARAGRAPH_BREAK.split(text):
            builder.block(" ".join(para.split()))
    doc = _finish(source, Path(source).stem, builder)
    return [doc.model_copy(update={"pages": builder.pages, "problems": problems})]


def load_jsonl(data: bytes, source: str, text_field: str = "text") -> list[Document]:
    text = decode_text(data)
    docs, bad = [], []
    for number, record, error in records(text.splitlines()):
        if error:
            bad.append(f"line {number}: {error}")
            continue
        body = record.get(text_field)
        if not isinstance(body, str) or not body.strip():
            bad.append(f"line {number}: no non-empty string field {text_field!r}")
            continue
        builder = DocumentBuilder()
        builder.block(body)
        meta = {k: v for k, v in record.items() if k != text_field}
        title = str(meta.get("title") or f"{Path(source).stem} #{number}")
        docs.append(_finish(source, title, builder, doc_id=f"{source}#{number}", metadata=meta))
    if bad:
        # A partly bad file is reported whole: indexing half of it would lose rows silently.
        raise LoadError(f"{len(bad)} bad record(s): " + "; ".join(bad[:3]))
    if not docs:
        raise LoadError("empty file")
    return docs


def load_docx(data: bytes, source: str) -> list[Document]:
    try:
        import docx
    except ImportError:
        raise LoadError("reading .docx needs python-docx: pip install python-docx") from None
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for a broken zip/xml
        raise LoadError(f"corrupt or unsupported .docx: {type(exc).__name__}: {exc}") from None
    builder, title = DocumentBuilder(), document.core_properties.title or ""
    for part in document.iter_inner_content():
        if isinstance(part, docx.table.Table):
            add_table(builder, [[cell.text for cell in row.cells] for row in part.rows])
            continue
        para = part
        style = para.style.name if para.style is not None else ""
        m = re.match(r"Heading (\d)", style or "")
        if m or style == "Title":
            level = int(m.group(1)) if m else 1
            title = title or para.text
            builder.heading(level, para.text)
        else:
            builder.block(para.text)
    return [_finish(source, title or Path(source).stem, builder,
                    metadata=office_properties(document.core_properties))]


def office_properties(props) -> dict:
    """An Office file's core properties as metadata (indexing.documents)."""
    return property_metadata({name: getattr(props, name, None) for name in
                              ("author", "category", "keywords", "subject", "created",
                               "modified")})


LOADERS: dict[str, Callable[[bytes, str], list[Document]]] = {
    ".txt": load_text, ".md": load_markdown, ".markdown": load_markdown,
    ".html": load_html, ".htm": load_html, ".xhtml": load_html, ".docx": load_docx,
    ".pptx": office.load_pptx, ".xlsx": office.load_xlsx, ".ods": office.load_ods,
    ".epub": office.load_epub, ".eml": office.load_eml,
}
WITH_OPTIONS: dict[str, Callable[[bytes, str, LoadOptions], list[Document]]] = {
    ".pdf": load_pdf, **{s: load_image for s in IMAGE_SUFFIXES},
}


def load_bytes(data: bytes, source: str, options: LoadOptions | None = None) -> list[Document]:
    """Documents of one file's content; the suffix of ``source`` picks the loader."""
    options = options or LoadOptions()
    suffix = Path(source).suffix.lower()
    if suffix == ".jsonl":
        return load_jsonl(data, source, options.jsonl_text_field)
    if suffix in WITH_OPTIONS:
        return WITH_OPTIONS[suffix](data, source, options)
    loader = LOADERS.get(suffix)
    if loader is None:
        raise LoadError(f"unsupported file type {suffix or '(none)'}")
    return loader(data, source)


def load_path(path: Path, source: str, options: LoadOptions | None = None,
              max_bytes: int | None = None) -> list[Document]:
    """Read and load one file; every OS problem becomes a LoadError with its reason."""
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise LoadError(f"file too large ({size / 1e6:.1f} MB > {max_bytes / 1e6:.1f} MB limit)")
        data = path.read_bytes()
    except PermissionError:
        raise LoadError("permission denied") from None
    except IsADirectoryError:
        raise LoadError("is a directory") from None
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from None
    return load_bytes(data, source, options)
