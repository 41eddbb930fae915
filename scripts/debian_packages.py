"""Real labelled text for classification: Debian package descriptions labelled by Section.

Reads `apt-cache dumpavail` (the package lists of this machine; `apt-get update`
fills them) and writes a CSV of id (package), text (name, short and start of the
long description) and section, balanced across the chosen sections and stable for
a given package list (every k-th package in name order).

    python scripts/debian_packages.py OUT.csv [--rows 5000] [--sections games,science,...]
"""

from __future__ import annotations

import argparse
import csv
import subprocess
from collections import defaultdict

SECTIONS = ["games", "science", "python", "perl", "doc", "net"]


def packages() -> list[dict[str, str]]:
    dump = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True,
                          check=True).stdout
    out = []
    for stanza in dump.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith(" ") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if "Package" in fields and "Description" in fields and "Section" in fields:
            out.append(fields)
    return out


def rows(n: int, sections: list[str]) -> list[dict[str, str]]:
    by_section: dict[str, dict[str, str]] = defaultdict(dict)
    for p in packages():
        section = p["Section"].split("/")[-1]
        if section in sections:
            short, _, long = p["Description"].partition("\n")
            long = " ".join(ln for ln in long.splitlines() if ln != ".")
            by_section[section][p["Package"]] = f"{p['Package']}: {short}. {long[:300]}".strip()
    per = -(-n // len(sections))
    out = []
    for section in sections:
        names = sorted(by_section[section])
        step = max(1, len(names) // per)
        out += [{"id": name, "text": by_section[section][name], "section": section}
                for name in names[::step][:per]]
    out.sort(key=lambda r: r["id"])  # interleave sections
    return out[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    args = parser.parse_args()
    data = rows(args.rows, args.sections.split(","))
    with open(args.out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "text", "section"])
        writer.writeheader()
        writer.writerows(data)
    print(f"{args.out}: {len(data)} rows")


if __name__ == "__main__":
    main()
