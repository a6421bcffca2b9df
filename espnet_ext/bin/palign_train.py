"""Train a ParaAlign speech encoder with ESPnet's trainer (all of asr_train.py's options apply)."""
from espnet_ext.tasks.palign import PalignTask


def get_parser():
    return PalignTask.get_parser()


def main(cmd=None):
    r"""ParaAlign training.

    Example:
        % python -m espnet_ext.bin.palign_train --print_config --optim adam
        % python -m espnet_ext.bin.palign_train --config conf/train.yaml ...
    """
    PalignTask.main(cmd=cmd)


if __name__ == "__main__":
    main()
