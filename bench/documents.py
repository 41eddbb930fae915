"""Documents as people have them: the same questions over HTML, the same pages printed
to PDF, and those PDFs scanned; OCR's error rate; each PDF reader's speed; table cells.

- Corpora (built here from Debian packages, never committed; `scripts/install-testdata.sh
  --dev-corpora`): the git manual pages that `eval/git-docs-qa.jsonl` cites (but the
  long user manual) with every sixth other git page beside them, as HTML; each printed
  by headless Chromium (`--print-to-pdf`, with the browser's own running header and
  footer: date, title, address, page numbers); each PDF page rendered at 200 dpi and
  wrapped as an image-only PDF (a scan). PostgreSQL's data type chapters (their tables)
  as HTML and printed to PDF for the table questions.
- Retrieval hit@5 and answer key-fact coverage of the same questions on each (the
  default /v1/ask path, qa.answerer on the local index).
- OCR character error rate: a sample of scanned pages, Tesseract's text against the
  text layer of the same printed page (whitespace collapsed).
- Pages/s of our PDF reader (indexing.pdf on pypdfium2) against pypdf's plain
  `extract_text()` (the reader before it) and pdfplumber, on the printed PDFs and the
  TeX/DocBook manuals, in this one run; OCR's pages/s from the scanned index's build;
  and the whole `llama-rag index --ocr off` command over those same PDFs, timed afresh.
- Table questions: one per table row sampled from the chapters' tables ("What is the
  storage size of bigint?"); the answer must hold that row's cell.

    python bench/documents.py [--skip-scan]

Writes bench/results/documents.json.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / "work" / "documents"
GIT = Path("/usr/share/doc/git-doc")
PG = Path("/usr/share/doc/postgresql-doc-15/html")
MANUALS = ROOT / "bench" / "work" / "pdf" / "corpus"  # bench/any_corpus.py's PDF manuals
SCAN_DPI = 200
CER_PAGES = 12
TABLE_QUESTIONS = 40
INGEST_TARGET = 10.0  # PDF pages/s with OCR off (issue 32)


def browser() -> str:
    for name in ("chromium-headless-shell", "chromium"):
        if found := shutil.which(name):
            return found
    raise SystemExit("needs Chromium: bash scripts/install-testdata.sh")


def print_pdf(html: Path, pdf: Path, clean: bool = False) -> None:
    """``html`` printed by Chromium; ``clean``: without its running header and footer."""
    subprocess.run([browser(), "--no-sandbox", "--disable-gpu", f"--print-to-pdf={pdf}",
                    *(["--no-pdf-header-footer"] if clean else []), html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)


def scan(pdf: Path, out: Path) -> int:
    """An image-only copy of ``pdf``: its pages rendered at SCAN_DPI."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf)
    images = [doc[i].render(scale=SCAN_DPI / 72).to_pil().convert("L") for i in range(len(doc))]
    images[0].save(out, "PDF", resolution=SCAN_DPI, save_all=True, append_images=images[1:])
    return len(images)


def git_pages(items) -> list[Path]:
    cited = sorted({s for i in items for s in i.sources} - {"user-manual.html"})
    others = sorted(p.name for p in GIT.glob("git*.html") if p.name not in cited
                    and p.name != "user-manual.html")
    return [GIT / name for name in cited + others[::6]]


def build(name: str, make) -> Path:
    """A corpus folder made by ``make(folder)`` (kept between runs)."""
    folder = WORK / name
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        make(folder)
        (folder / ".done").write_text("")
    return folder


def index(folder: Path, *flags: str, keep: bool = True) -> tuple[Path, float]:
    """`llama-rag index` of the folder; (index dir, seconds of the whole command) (kept
    between runs unless ``keep`` is false)."""
    out = folder.parent / f"{folder.name}-index"
    seconds_file = out / "seconds"
    if not keep or not seconds_file.exists():
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "llama-rag"), "index", str(folder),
                        "--index-dir", str(out), "--no-progress", *flags], check=True)
        seconds_file.write_text(f"{time.perf_counter() - started:.1f}")
    return out, float(seconds_file.read_text())


def ingest_speed(pdfs: list[Path]) -> dict:
    """Pages/s of `llama-rag index --ocr off` over these PDFs, timed afresh: the whole
    command (Ray's and the actors' start, reading, chunking, embedding, publishing)."""
    import pypdfium2 as pdfium

    folder = WORK / "all-pdf"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for pdf in pdfs:
        shutil.copy(pdf, folder / pdf.name)
    pages = sum(len(pdfium.PdfDocument(p)) for p in pdfs)
    _, seconds = index(folder, "--ocr", "off", keep=False)
    return {"files": len(pdfs), "pages": pages, "seconds": seconds,
            "pages_per_s": round(pages / seconds, 1)}


def evaluate(index_dir: Path, items) -> dict:
    from indexing.retriever import RetrieverCore
    from llama_rag.config import load_settings
    from qa.evaluation.report import evaluate as run_eval
    from qa.evaluation.targets import local_target

    settings = load_settings(None, {"index.dir": str(index_dir)})
    searcher, ask = local_target(RetrieverCore(settings), settings)
    report = run_eval(items, searcher(None), ask)
    return {"hit_at_5": report.hit_at_5, "key_fact": report.facts.key_fact if report.facts else None,
            "cites_document": report.facts.cites_document if report.facts else None,
            "questions": report.answerable_questions}


def as_suffix(items, suffix: str):
    return [i.model_copy(update={"sources": [re.sub(r"\.html$", suffix, s) for s in i.sources]})
            for i in items]


def cer(texts: Path, scans: Path) -> dict:
    """Character error rate of OCR on a sample of scanned pages of clean prints (no
    browser header or footer, whose place in the text layer's order differs from the
    page's) against the text layer of the same page, whitespace collapsed."""
    import pypdfium2 as pdfium
    from rapidfuzz.distance import Levenshtein

    from indexing.ocr import read_images, render

    rng = random.Random(0)
    pages = [(p, i) for p in sorted(texts.glob("*.pdf")) for i in range(len(pdfium.PdfDocument(p)))]
    sample = rng.sample(pages, min(CER_PAGES, len(pages)))
    errors = chars = 0
    started = time.perf_counter()
    images, refs = [], []
    for path, i in sample:
        ref = pdfium.PdfDocument(path)[i].get_textpage().get_text_range()
        refs.append(" ".join(ref.split()))
        images.append(render(pdfium.PdfDocument(scans / path.name)[i]))
    for ref, got in zip(refs, read_images(images)):
        got = " ".join(str(got).split())
        errors += Levenshtein.distance(ref, got)
        chars += len(ref)
    seconds = time.perf_counter() - started
    return {"pages": len(sample), "cer": round(errors / max(chars, 1), 4),
            "ocr_pages_per_s": round(len(sample) / seconds, 2)}


def reader_speed(pdfs: list[Path]) -> dict:
    """Pages/s of each reader over the same files, in this run."""
    import pdfplumber
    import pypdf

    from indexing.pdf import load_pdf

    def ours(path: Path) -> int:
        return len(load_pdf(path.read_bytes(), path.name)[0].pages)

    def plain(path: Path) -> int:
        return len([p.extract_text() for p in pypdf.PdfReader(path).pages])

    def plumber(path: Path) -> int:
        with pdfplumber.open(path) as pdf:
            return len([p.extract_text() for p in pdf.pages])

    out = {}
    for name, read in [("ours (pypdfium2 + structure)", ours), ("pypdf extract_text", plain),
                       ("pdfplumber extract_text", plumber)]:
        started, pages = time.perf_counter(), 0
        for path in pdfs:
            pages += read(path)
        out[name] = {"pages": pages, "pages_per_s": round(pages / (time.perf_counter() - started), 1)}
    return out


def table_items(pages: list[Path]):
    """Questions whose answer is one cell: for sampled rows of the chapters' tables with a
    header, "What is the <column> of <the row's first cell>?"."""
    from lxml import html

    from qa.evaluation.report import QAItem

    rng = random.Random(1)
    rows = []  # (page, header, cells)
    for page in pages:
        root = html.parse(str(page)).getroot()
        for table in root.iter("table"):
            head = [" ".join(c.text_content().split()) for c in table.iterfind("./thead/tr/th")]
            if len(head) < 2:
                continue
            for tr in table.iterfind("./tbody/tr"):
                cells = [" ".join(c.text_content().replace("\u200b", "").split())
                         for c in tr.iterfind("./td")]
                if len(cells) == len(head):
                    rows.append((page, head, cells))
    # a question must name its row: the row's first cell has letters and names no other row
    keys = [cells[0].lower() for _, _, cells in rows]
    found = []
    for page, head, cells in rows:
        key = cells[0]
        if not 0 < len(key) <= 40 or not re.search(r"[A-Za-z]{2}", key) or keys.count(key.lower()) > 1:
            continue
        for j in range(1, len(head)):
            if 0 < len(cells[j]) <= 40 and cells[j] not in key:
                found.append(QAItem(question=f"What is the {head[j].lower()} of {key}?",
                                    sources=[page.name], key_facts=[cells[j]]))
    return rng.sample(found, min(TABLE_QUESTIONS, len(found)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-scan", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "documents.json")
    args = parser.parse_args()
    from qa.evaluation.report import load_qa

    items = [i for i in load_qa(ROOT / "eval" / "git-docs-qa.jsonl")]
    pages = git_pages(items)
    names = {p.name for p in pages}
    items = [i for i in items if not i.sources or set(i.sources) <= names]

    html = build("html", lambda d: [shutil.copy(p, d / p.name) for p in pages])
    pdf = build("pdf", lambda d: [print_pdf(p, d / p.with_suffix(".pdf").name) for p in pages])
    result: dict = {"questions": len(items), "pages_html": len(pages)}
    for name, folder, suffix in [("html", html, ".html"), ("pdf", pdf, ".pdf")]:
        index_dir, seconds = index(folder)
        result[name] = {**evaluate(index_dir, as_suffix(items, suffix)), "index_s": seconds}
    if not args.skip_scan:
        scans = build("scan", lambda d: [scan(p, d / p.name) for p in sorted(pdf.glob("*.pdf"))])
        index_dir, seconds = index(scans)
        result["scan"] = {**evaluate(index_dir, as_suffix(items, ".pdf")), "index_s": seconds}
        clean = build("clean", lambda d: [print_pdf(p, d / p.with_suffix(".pdf").name, clean=True)
                                          for p in pages[::4]])
        clean_scans = build("clean-scan", lambda d: [scan(p, d / p.name)
                                                     for p in sorted(clean.glob("*.pdf"))])
        result["ocr"] = cer(clean, clean_scans)
    manuals = sorted(MANUALS.glob("*.pdf"))
    result["readers"] = reader_speed(sorted(pdf.glob("*.pdf")) + manuals)
    result["ingest"] = ingest_speed(sorted(pdf.glob("*.pdf")) + manuals)

    pg_pages = sorted(PG.glob("datatype*.html"))
    table_qs = table_items(pg_pages)
    pg_html = build("pg-html", lambda d: [shutil.copy(p, d / p.name) for p in pg_pages])
    pg_pdf = build("pg-pdf", lambda d: [print_pdf(p, d / p.with_suffix(".pdf").name)
                                        for p in pg_pages])
    result["tables"] = {"questions": len(table_qs)}
    for name, folder, suffix in [("html", pg_html, ".html"), ("pdf", pg_pdf, ".pdf")]:
        result["tables"][name] = evaluate(index(folder)[0], as_suffix(table_qs, suffix))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    h, p = result["html"]["hit_at_5"], result["pdf"]["hit_at_5"]
    print(f"hit@5 html {h:.3f}, printed pdf {p:.3f} ({p - h:+.3f})" + (
        f", scanned {result['scan']['hit_at_5']:.3f} ({result['scan']['hit_at_5'] - h:+.3f}); "
        f"OCR CER {result['ocr']['cer']:.4f}" if "scan" in result else ""))
    r = result["readers"]
    base = r["pypdf extract_text"]["pages_per_s"]
    print(f"reader pages/s: ours {r['ours (pypdfium2 + structure)']['pages_per_s']} "
          f"(x{r['ours (pypdfium2 + structure)']['pages_per_s'] / base:.2f} of pypdf {base}), "
          f"pdfplumber {r['pdfplumber extract_text']['pages_per_s']}")
    i = result["ingest"]
    print(f"llama-rag index --ocr off: {i['pages']} PDF pages in {i['seconds']} s, "
          f"{i['pages_per_s']} pages/s (x{i['pages_per_s'] / INGEST_TARGET:.2f} of the "
          f"{INGEST_TARGET} pages/s asked for)")
    t = result["tables"]
    print(f"table cells: html {t['html']['key_fact']:.3f}, pdf {t['pdf']['key_fact']:.3f}")


if __name__ == "__main__":
    main()
