"""Load a state dict from .safetensors or a torch pickle (.pt/.pth/.bin), unwrapping the usual containers."""
import os

import torch


def read_state_dict(path):
    """{name: tensor} from `path`; {'state_dict': ...} containers and DataParallel `module.` prefixes are removed."""
    if not os.path.isfile(path):
        raise SystemExit(f"error: weights file {path} does not exist")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001  (checkpoints that pickle training objects; the path is the user's own)
            state = torch.load(path, map_location="cpu", weights_only=False)
    for container in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(container), dict):
            state = state[container]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise SystemExit(f"error: {path}: expected a state dict of tensors (optionally under 'state_dict')")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def load_into(module, path, what):
    """Strictly load `path` into `module`; the error names the missing and unexpected keys."""
    state = read_state_dict(path)
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {list(state[k].shape)} vs {list(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise SystemExit(f"error: {path} does not fit the {what}: {len(missing)} missing keys {missing[:4]}, "
                         f"{len(unexpected)} unexpected keys {unexpected[:4]}, {len(wrong)} shape mismatches "
                         f"{wrong[:4]}")
    module.load_state_dict(state)
    return module
