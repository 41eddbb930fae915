"""Text of images and scanned PDF pages, by Tesseract (Debian's tesseract-ocr, offline).

The ``tesseract`` binary runs one process per page with OpenMP held to one thread
(``OMP_THREAD_LIMIT=1``): on a 2-core machine its own threads made a page 6x slower
(docs/benchmarks.md). Pages are read ``workers`` at a time instead. A missing binary
or language is a LoadError that names the package to install.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from llama_rag.errors import LoadError

DPI = 300  # Tesseract reads body text best at about 300 dpi
MIN_CONFIDENCE = 30  # words Tesseract is less sure of than this are dropped
PAGE_TIMEOUT_S = 120


def _tesseract() -> str:
    found = shutil.which("tesseract")
    if found is None:
        raise LoadError("OCR needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng "
                        "(or set ingest.ocr: off)")
    return found


def image_text(image, language: str = "eng") -> str:
    """The text of a PIL image, paragraphs separated by blank lines."""
    binary = _tesseract()
    with tempfile.TemporaryDirectory(prefix="llama-rag-ocr-") as tmp:
        path = Path(tmp) / "page.png"
        image.convert("L").save(path)
        try:
            done = subprocess.run([binary, str(path), "stdout", "-l", language, "tsv"],
                                  capture_output=True, timeout=PAGE_TIMEOUT_S, check=False,
                                  env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        except subprocess.TimeoutExpired:
            raise LoadError(f"OCR took longer than {PAGE_TIMEOUT_S} s") from None
    err = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        if "Failed loading language" in err or "Error opening data file" in err:
            raise LoadError(f"Tesseract has no data for language {language!r}: install "
                            f"tesseract-ocr-{language.split('+')[0]}")
        raise LoadError(f"OCR failed: {err.strip()[:200]}")
    return _paragraphs(done.stdout.decode("utf-8", "replace"))


def _paragraphs(tsv: str) -> str:
    """Tesseract's words back into lines and paragraphs (its block/paragraph numbers)."""
    paragraphs: dict[tuple[str, str], dict[str, list[str]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if not word or float(row.get("conf") or -1) < MIN_CONFIDENCE:
            continue
        key = (row["block_num"], row["par_num"])
        paragraphs.setdefault(key, {}).setdefault(row["line_num"], []).append(word)
    return "\n\n".join("\n".join(" ".join(words) for words in lines.values())
                       for lines in paragraphs.values()).strip()


def render(page):
    """A pypdfium2 page as a PIL image at ``DPI`` (PDFium is not thread-safe: render
    pages one by one, read them in parallel)."""
    return page.render(scale=DPI / 72).to_pil()


def read_images(images: list, language: str = "eng", workers: int | None = None
                ) -> list[str | LoadError]:
    """The text of each image, or the LoadError that says why it could not be read."""
    def one(image) -> str | LoadError:
        try:
            return image_text(image, language)
        except LoadError as exc:
            return exc

    workers = workers or min(4, os.cpu_count() or 1)
    if len(images) <= 1 or workers == 1:
        return [one(i) for i in images]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, images))


def open_image(data: bytes):
    """The frames of an image file (a TIFF may hold several pages)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        return [frame.copy() for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LoadError(f"corrupt or unsupported image: {exc}") from None
