# Sourced by run.sh / palign.sh: installs tools/venv on first use (idempotent) and activates it.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../.." && pwd)
export MAIN_ROOT
if [ -z "${PALIGN_SKIP_INSTALL:-}" ]; then
    "$MAIN_ROOT/tools/install.sh" >&2 || { echo "path.sh: tools/install.sh failed" >&2; return 1 2>/dev/null || exit 1; }
fi
# shellcheck disable=SC1091
. "${PALIGN_VENV:-$MAIN_ROOT/tools/venv}/bin/activate"
export PYTHONUNBUFFERED=1
export TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
