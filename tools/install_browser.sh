#!/usr/bin/env bash
# Install the headless browser the demo's test drives: Debian's chromium and chromium-driver.
# Idempotent: does nothing when both are on PATH. Needs root (or password-less sudo) to install.
#   tools/install_browser.sh
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    echo "install_browser.sh: chromium and chromedriver are installed; nothing to do."
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo="sudo -n"
else
    echo "install_browser.sh: chromium/chromedriver missing and no root: run as root: apt-get install chromium chromium-driver" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q chromium chromium-driver
command -v chromium > /dev/null && command -v chromedriver > /dev/null
echo "install_browser.sh: $(chromium --version 2> /dev/null || echo chromium) installed."
