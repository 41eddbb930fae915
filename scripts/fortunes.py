"""Real labelled text for classification: fortune cookies labelled by the file they are in.

Reads the plain-text files of the ``fortunes`` package (/usr/share/games/fortunes,
entries separated by a line holding ``%``) and writes a CSV of id, text (the entry,
whitespace folded) and label (the file), balanced across the chosen files and stable:
entries in file order, every k-th one. A second label set beside Debian's sections
(scripts/debian_packages.py): short, informal text whose topic is in the words.

    python scripts/fortunes.py OUT.csv [--rows 3600] [--files computers,definitions,...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from labeled_csv import write  # scripts/ is on the path (run as a script, or by the bench)

FOLDER = Path("/usr/share/games/fortunes")
FILES = ["computers", "definitions", "people", "politics", "science", "songs-poems"]
MAX_CHARS = 600  # longer entries (whole poems, dialogues) are cut here


def entries(name: str) -> list[str]:
    path = FOLDER / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing: install the fortunes package "
                         "(scripts/install-testdata.sh --dev-corpora)")
    text = path.read_text(encoding="utf-8", errors="replace")
    out = [" ".join(chunk.split()) for chunk in text.split("\n%\n")]
    return [e[:MAX_CHARS] for e in out if len(e) >= 20]


def rows(n: int, files: list[str]) -> list[dict[str, str]]:
    per = -(-n // len(files))
    out = []
    for name in files:
        found = entries(name)
        step = max(1, len(found) // per)
        out += [{"id": f"{name}-{i}", "text": text, "label": name}
                for i, text in list(enumerate(found))[::step][:per]]
    out.sort(key=lambda r: (int(r["id"].rsplit("-", 1)[1]), r["id"]))  # interleave labels
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=3600)
    parser.add_argument("--files", default=",".join(FILES))
    args = parser.parse_args()
    write(args.out, rows(args.rows, args.files.split(",")))


if __name__ == "__main__":
    main()
