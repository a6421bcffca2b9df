"""ESPnet's ``cls`` training (espnet2.bin.cls_train) with ParaAlign's ``mel_pitch`` frontend on offer, so
that the classifier cascade of stage 11 hears the same features as the ParaAlign encoder."""
import sys

import espnet2.tasks.cls as cls_task

from espnet_ext.palign.frontend import register_in_espnet_task


def main(cmd=None):
    register_in_espnet_task(cls_task)
    cls_task.CLSTask.main(cmd=cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
