#!/usr/bin/env bash
# Install the headless browser the demo's test drives: Debian's chromium and chromium-driver.
# Idempotent: does nothing when both are on PATH. Needs root (or password-less sudo) to install.
#   tools/install_browser.sh
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
"$(dirname "${BASH_SOURCE[0]}")/install_apt.sh" install_browser.sh "chromium chromedriver" chromium chromium-driver
echo "install_browser.sh: $(chromium --version 2> /dev/null || echo chromium) ready."
