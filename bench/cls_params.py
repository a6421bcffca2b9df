"""Parameters of a stage 11 classifier config at real size (e.g. conf/cls_wavlm_large.yaml): the frozen
WavLM-Large built with random weights from its released architecture (no download), and the trainable
preencoder, encoder and linear head on its features. The config's header quotes this line; a test checks it.

  python bench/cls_params.py conf/cls_wavlm_large.yaml
"""
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_scale import WAVLM_LARGE  # noqa: E402 - the released WavLM-Large's architecture (its checkpoint's cfg)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summary(config_path: str, num_classes: int = 5) -> str:
    from espnet2.tasks.cls import decoder_choices, encoder_choices, preencoder_choices
    from s3prl.upstream.wavlm.WavLM import WavLM, WavLMConfig

    conf = yaml.safe_load(open(config_path))
    frozen = count(WavLM(WavLMConfig(WAVLM_LARGE)))
    pre = preencoder_choices.get_class(conf["preencoder"])(**conf["preencoder_conf"])
    enc = encoder_choices.get_class(conf["encoder"])(input_size=pre.output_size(), **conf["encoder_conf"])
    head = decoder_choices.get_class(conf["decoder"])(vocab_size=num_classes, encoder_output_size=enc.output_size(),
                                                      **conf["decoder_conf"])
    return (f"frozen WavLM-Large {frozen / 1e6:.1f} M; trainable preencoder {count(pre) / 1e6:.2f} M + encoder "
            f"{count(enc) / 1e6:.1f} M + linear head {count(head) / 1e3:.1f} k ({num_classes} classes)")


if __name__ == "__main__":
    print(summary(sys.argv[1]))
