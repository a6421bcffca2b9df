#!/usr/bin/env bash
# Make a new recipe directory that links to this template, like ESPnet's egs2/TEMPLATE/asr1/setup.sh.
#   egs/TEMPLATE/palign1/setup.sh egs/<corpus>/palign1
# Then write run.sh, conf/ and local/data.sh there.
set -euo pipefail
case "${1:-}" in -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 1 ] || { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }
target=$1
[ ! -e "$target/palign.sh" ] || { echo "setup.sh: $target already has palign.sh" >&2; exit 1; }
template=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$target/conf" "$target/local"
rel=$(python3 -c "import os,sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))" "$template" "$(cd "$target" && pwd)")
for f in palign.sh path.sh cmd.sh db.sh utils; do
    ln -s "$rel/$f" "$target/$f"
done
echo "setup.sh: made $target (links to $rel); now add run.sh, conf/ and local/data.sh"
