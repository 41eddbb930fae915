"""Real labelled text for classification: Debian package descriptions labelled by Section
(or, with ``--tags``, by their debtags: several labels a row).

Reads `apt-cache dumpavail` (the package lists of this machine; `apt-get update`
fills them) and writes a CSV of id (package), text (name, short and start of the
long description) and section, balanced across the chosen sections and stable for
a given package list (every k-th package in name order).

    python scripts/debian_packages.py OUT.csv [--rows 5000] [--sections games,science,...]
    python scripts/debian_packages.py OUT.csv --tags [--rows 3000]   # id, text, tags ("a;b")
    python scripts/debian_packages.py OUT.csv --extract [--rows 200]  # id, text, fields (JSON)

``--extract`` rows are for the extraction job: the text is the package's record as
`apt show` prints it (its fields in the archive's order, the description cut), the
gold object the values a user would pull out of it (examples/debian-package.schema.json;
no homepage in the record: null).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from collections import defaultdict

from labeled_csv import write  # scripts/ is on the path (run as a script, or by the bench)

SECTIONS = ["games", "science", "python", "perl", "doc", "net"]
# debtags of programs, from three facets (what it is used for, works with, looks like)
TAGS = ["interface::commandline", "interface::graphical", "interface::daemon",
        "works-with::text", "works-with::audio", "works-with::image", "works-with::mail",
        "use::gameplaying", "use::converting", "use::editing"]


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


def _text(p: dict[str, str]) -> str:
    short, _, long = p["Description"].partition("\n")
    long = " ".join(ln for ln in long.splitlines() if ln != ".")
    return f"{p['Package']}: {short}. {long[:300]}".strip()


def tagged_rows(n: int, tags: list[str]) -> list[dict[str, str]]:
    """Programs with one or more of ``tags``: every k-th in name order, tags joined by ";"."""
    found = {}
    for p in packages():
        have = {t.strip() for t in p.get("Tag", "").split(",")}
        chosen = [t for t in tags if t in have]
        if chosen and "role::program" in have:
            found[p["Package"]] = {"id": p["Package"], "text": _text(p), "tags": ";".join(chosen)}
    names = sorted(found)
    return [found[name] for name in names[::max(1, len(names) // n)][:n]]


RECORD_FIELDS = ["Package", "Version", "Priority", "Section", "Maintainer", "Installed-Size",
                 "Depends", "Homepage", "Description"]
_EMAIL = re.compile(r"<([^>]+)>")


def extract_rows(n: int) -> list[dict[str, str]]:
    """Every k-th package in name order: its record as text, the fields to extract as JSON."""
    found = {}
    for p in packages():
        email = _EMAIL.search(p.get("Maintainer", ""))
        if not email or "Version" not in p:
            continue
        text = "\n".join(f"{k}: {p[k][:400]}" for k in RECORD_FIELDS if k in p)
        fields = {"package": p["Package"], "version": p["Version"],
                  "maintainer_email": email.group(1), "homepage": p.get("Homepage")}
        found[p["Package"]] = {"id": p["Package"], "text": text, "fields": json.dumps(fields)}
    names = sorted(found)
    return [found[name] for name in names[::max(1, len(names) // n)][:n]]


def rows(n: int, sections: list[str]) -> list[dict[str, str]]:
    by_section: dict[str, dict[str, str]] = defaultdict(dict)
    for p in packages():
        section = p["Section"].split("/")[-1]
        if section in sections:
            by_section[section][p["Package"]] = _text(p)
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
    parser.add_argument("--tags", nargs="?", const=",".join(TAGS),
                        help="debtags as labels instead of sections (default: TAGS)")
    parser.add_argument("--extract", action="store_true",
                        help="records and the fields to extract from them (JSON) instead")
    args = parser.parse_args()
    if args.extract:
        write(args.out, extract_rows(args.rows))
    elif args.tags:
        write(args.out, tagged_rows(args.rows, args.tags.split(",")))
    else:
        write(args.out, rows(args.rows, args.sections.split(",")))


if __name__ == "__main__":
    main()
