#!/usr/bin/env bash
# Real corpora for tests and the demo, from Debian's packages (never committed):
# python3.11-doc (the Python docs as HTML); Chromium's headless shell and a font for
# the browser test of the question page (Playwright drives it; no browser download);
# prometheus for promtool.
set -euo pipefail
need=()
[ -f /usr/share/doc/python3.11/html/library/zipfile.html ] || need+=(python3.11-doc)
command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null \
  || need+=(chromium-headless-shell fonts-dejavu-core)
command -v promtool >/dev/null || need+=(prometheus)  # promtool checks infra/monitoring
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing test data: ${need[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${need[@]}"
