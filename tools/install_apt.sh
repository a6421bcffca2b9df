#!/usr/bin/env bash
# Install Debian packages unless the programs they bring are on PATH already (idempotent). Needs root (or
# password-less sudo) to install. Used by install_browser.sh and install.sh --voices.
#   tools/install_apt.sh NAME "PROGRAM ..." PACKAGE ...     (NAME: who asks, in the messages)
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -ge 3 ] || { echo "install_apt.sh: usage: install_apt.sh NAME \"PROGRAM ...\" PACKAGE ... (see --help)" >&2; exit 2; }
name=$1 programs=$2; shift 2
have_all() { local p; for p in ${programs}; do command -v "$p" > /dev/null || return 1; done; }
if have_all; then
    echo "${name}: ${programs// / and } installed; nothing to do."
    exit 0
fi
if [ "$(id -u)" = 0 ]; then sudo=""
elif command -v sudo > /dev/null && sudo -n true 2> /dev/null; then sudo="sudo -n"
else
    echo "${name}: ${programs// //} missing and no root: run as root: apt-get install $*" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q "$@"
have_all || { echo "${name}: apt-get install $* left ${programs// //} missing" >&2; exit 1; }
echo "${name}: $* installed."
