#!/usr/bin/env bash
# Real corpora for tests and the demo, from Debian's packages (never committed):
# python3.11-doc (the Python docs as HTML); Chromium's headless shell and a font for
# the browser test of the question page (Playwright drives it; no browser download);
# prometheus for promtool; Tesseract with English for OCR. With --dev-corpora, also the answer benchmark's corpora of
# other kinds (bench/any_corpus.py): git's and PostgreSQL's HTML manuals, PDF manuals,
# man pages; and fortune's files, the second label set of bench/finetune.py.
set -euo pipefail
need=()
if [ "${1:-}" = "--dev-corpora" ]; then
  [ -f /usr/share/doc/git-doc/gitfaq.html ] || need+=(git-doc)
  [ -d /usr/share/doc/postgresql-doc-15/html ] || need+=(postgresql-doc-15)
  [ -f /usr/share/doc/valgrind/valgrind_manual.pdf.gz ] || need+=(valgrind)
  [ -f /usr/share/doc/bzip2/manual.pdf.gz ] || need+=(bzip2-doc)
  [ -f /usr/share/doc/nettle-dev/nettle.pdf.gz ] || need+=(nettle-dev)
  [ -f /usr/share/doc/libtasn1-doc/libtasn1.pdf ] || need+=(libtasn1-doc)
  [ -f /usr/share/doc/fontconfig/fontconfig-user.pdf.gz ] || need+=(fontconfig)
  for cmd in man curl wget zip unzip tmux make patch less; do  # the man-page corpus
    [ -f "/usr/share/man/man1/$cmd.1.gz" ] || need+=("$([ "$cmd" = man ] && echo man-db || echo "$cmd")")
  done
  [ -f /usr/share/man/man1/ssh.1.gz ] || need+=(openssh-client)
  [ -f /usr/share/man/man1/ps.1.gz ] || need+=(procps)
  [ -f /usr/share/games/fortunes/computers ] || need+=(fortunes)
fi
[ -f /usr/share/doc/python3.11/html/library/zipfile.html ] || need+=(python3.11-doc)
# OCR of scanned PDFs and images (ingest.ocr): Tesseract and its English data
command -v tesseract >/dev/null || need+=(tesseract-ocr)
[ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata 2>/dev/null)" ] || need+=(tesseract-ocr-eng)
command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null \
  || need+=(chromium-headless-shell fonts-dejavu-core)
command -v promtool >/dev/null || need+=(prometheus)  # promtool checks infra/monitoring
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing test data: ${need[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
