"""Data-parallel training as ESPnet runs it (torch DistributedDataParallel around the model), on CPU with the
gloo backend: the frozen LLM lives outside the module tree, so each rank holds its own copy and only the
trainable parameters' gradients are synchronised. One step on two half-batches (two processes) must give the
same update as one process on the whole batch."""
import os
import socket
import subprocess
import sys
import textwrap

import torch

from conftest import ROOT, tiny_train_args

WORKER = textwrap.dedent('''
    import os, sys, torch
    from espnet_ext.tasks.palign import PalignTask
    llm, out, rank, world = sys.argv[1], sys.argv[2], int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    args = PalignTask.get_parser().parse_args(ARGS)
    torch.manual_seed(0)
    model = PalignTask.build_model(args).eval()  # eval: no dropout, so both runs see the same function
    torch.manual_seed(1)
    speech = 0.1 * torch.randn(4, 8000)
    ids = model.llm.chat.reply_ids("That is wonderful news!")
    response = torch.tensor([ids] * 4)
    batch = {"speech": speech, "speech_lengths": torch.tensor([8000] * 4),
             "response": response, "response_lengths": torch.tensor([len(ids)] * 4)}
    if world > 1:
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
        half = slice(rank * 2, rank * 2 + 2)
        batch = {k: v[half] for k, v in batch.items()}
        net = torch.nn.parallel.DistributedDataParallel(model)
    else:
        net = model
    loss, _, _ = net(**batch)
    loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5).step()
    if rank == 0:
        torch.save({n: p.detach() for n, p in model.named_parameters() if p.requires_grad}, out)
    if world > 1:  # both ranks done before either tears gloo down: a rank that exits first can abort the
        torch.distributed.barrier()  # other's gloo threads ("terminate called without an active exception")
        torch.distributed.destroy_process_group()
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_on_half_batches_update_like_one_on_the_whole(tiny_llm, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.replace("ARGS", repr(tiny_train_args(tiny_llm))))
    env = dict(os.environ, PYTHONPATH=str(ROOT), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(tiny_llm), str(tmp_path / "ddp.pt")],
                              env=dict(env, RANK=str(r), WORLD_SIZE="2"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    one = subprocess.run([sys.executable, str(script), str(tiny_llm), str(tmp_path / "one.pt")],
                         env=dict(env, RANK="0", WORLD_SIZE="1"), capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stdout[-3000:] + one.stderr[-3000:]
    ddp, single = torch.load(tmp_path / "ddp.pt"), torch.load(tmp_path / "one.pt")
    assert ddp.keys() == single.keys() and not any(k.startswith("llm") for k in ddp)
    for k in ddp:
        assert torch.allclose(ddp[k], single[k], atol=1e-6), k
    torch.manual_seed(0)  # and the step did change the parameters (the comparison is not vacuous)
    from espnet_ext.tasks.palign import PalignTask

    before = PalignTask.build_model(PalignTask.get_parser().parse_args(tiny_train_args(tiny_llm)))
    assert any(not torch.allclose(p.detach(), single[n]) for n, p in before.named_parameters() if n in single)
