"""Text of images and scanned PDF pages, by Tesseract (Debian's tesseract-ocr, offline).

pytesseract runs the ``tesseract`` binary the set-up installs; a missing binary or
language is a LoadError that says which package to install.
"""

from __future__ import annotations

import io
import re

from llama_rag.errors import LoadError

DPI = 300  # Tesseract reads body text best at about 300 dpi
MIN_CONFIDENCE = 30  # words Tesseract is less sure of than this are dropped


def image_text(image, language: str = "eng") -> str:
    """The text of a PIL image, paragraphs separated by blank lines."""
    import pytesseract

    try:
        data = pytesseract.image_to_data(image.convert("L"), lang=language,
                                         output_type=pytesseract.Output.DICT)
    except pytesseract.TesseractNotFoundError:
        raise LoadError("OCR needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-eng "
                        "(or set ingest.ocr: off)") from None
    except pytesseract.TesseractError as exc:
        message = str(exc.message or exc)
        if "Failed loading language" in message or "Error opening data file" in message:
            raise LoadError(f"Tesseract has no data for language {language!r}: install "
                            f"tesseract-ocr-{language.split('+')[0]}") from None
        raise LoadError(f"OCR failed: {message.strip()[:200]}") from None
    return _paragraphs(data)


def _paragraphs(data: dict) -> str:
    """Tesseract's words back into lines and paragraphs (its block/paragraph numbers)."""
    paragraphs: dict[tuple[int, int], dict[int, list[str]]] = {}
    for i, word in enumerate(data["text"]):
        if not word.strip() or float(data["conf"][i]) < MIN_CONFIDENCE:
            continue
        key = (data["block_num"][i], data["par_num"][i])
        paragraphs.setdefault(key, {}).setdefault(data["line_num"][i], []).append(word)
    out = []
    for lines in paragraphs.values():
        out.append("\n".join(" ".join(words) for words in lines.values()))
    return re.sub(r"\n{3,}", "\n\n", "\n\n".join(out)).strip()


def page_text(page, language: str = "eng") -> str:
    """The text of a pypdfium2 page, rendered at ``DPI``."""
    image = page.render(scale=DPI / 72).to_pil()
    return image_text(image, language)


def open_image(data: bytes):
    """The frames of an image file (a TIFF may hold several pages)."""
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        return [frame.copy() for frame in ImageSequence.Iterator(image)]
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise LoadError(f"corrupt or unsupported image: {exc}") from None
