"""Load a trained model file without running code from it, and only when it fits the model exactly.

ESPnet's ``build_model_from_file`` unpickles with ``torch.load(weights_only=False)`` (a model file
received from someone else can then run any code on load) and loads with ``strict=False`` (a wrong file,
e.g. the Trainer's ``checkpoint.pth``, silently leaves an untrained model). Inference programs here load
through :func:`load_state_strict` instead: tensors only, and every key must match.
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

import torch


class ModelFileError(RuntimeError):
    """A model file that cannot be loaded safely or does not fit the model built from its config."""


def read_state_dict(model_file: Union[str, Path], device: str = "cpu") -> dict:
    """Tensors of ``model_file``, refusing any pickled object that is not plain data."""
    model_file = Path(model_file)
    if not model_file.is_file():
        raise ModelFileError(f"{model_file}: no such model file")
    try:
        state = torch.load(model_file, map_location=device, weights_only=True)
    except Exception as e:  # pickle.UnpicklingError for code payloads, RuntimeError for non-zip files
        raise ModelFileError(
            f"{model_file}: not a plain tensor file; refusing to unpickle it (it could run code on load). "
            f"Load only model files saved by this toolkit's training. ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        kind = type(state).__name__ if not isinstance(state, dict) else "a dict holding non-tensors"
        raise ModelFileError(f"{model_file}: expected a model state dict (name -> tensor), found {kind}; "
                             f"is this the Trainer's checkpoint.pth instead of an epoch or averaged model?")
    return state


def load_state_strict(model: torch.nn.Module, model_file: Union[str, Path], device: str = "cpu") -> torch.nn.Module:
    """Load ``model_file`` into ``model``; missing or unexpected parameter names are an error naming them."""
    state = read_state_dict(model_file, device)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        def show(keys):
            return ", ".join(keys[:5]) + (f", ... ({len(keys)} in all)" if len(keys) > 5 else "")
        raise ModelFileError(f"{model_file} does not fit the model of its config: "
                             f"missing {show(missing) or 'none'}; unexpected {show(unexpected) or 'none'}")
    bad = [k for k in state if state[k].shape != own[k].shape]
    if bad:
        raise ModelFileError(f"{model_file}: shape mismatch for {bad[0]}: file {tuple(state[bad[0]].shape)}, "
                             f"model {tuple(own[bad[0]].shape)} ({len(bad)} tensor(s) differ)")
    model.load_state_dict(state, strict=True)
    return model
