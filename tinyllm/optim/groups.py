"""Parameter groups for weight decay: matrices decay; biases, norm weights and embeddings do not."""

from __future__ import annotations

import re

from tinyllm.nn import Embedding, LayerNorm, RMSNorm

NO_DECAY_MODULES = (Embedding, LayerNorm, RMSNorm)
NO_DECAY_WORDS = {"wte", "wpe", "pos", "position", "ln", "norm"}


def decays(module, name: str, param) -> bool:
    """Return whether a parameter gets weight decay: a matrix that is not an embedding or a norm.

    Biases and norm weights are found by ndim (< 2), embeddings and norms by the module that holds
    them or by their name (e.g. a learned positional table held directly as a Parameter).
    """
    if param.ndim < 2 or isinstance(module, NO_DECAY_MODULES):
        return False
    words = re.split(r"[._]", name.lower())
    return not any(w in NO_DECAY_WORDS or w.startswith("emb") or w.endswith("norm") for w in words)


def weight_decay_groups(model, weight_decay: float) -> list[dict]:
    """Return two optimizer groups, {"params", "names", "weight_decay"}: with and without decay."""
    owners = {}
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None:
                owners.setdefault(id(param), module)
    decay, no_decay = (
        {"params": [], "names": [], "weight_decay": weight_decay},
        {"params": [], "names": [], "weight_decay": 0.0},
    )
    for name, param in model.named_parameters():
        group = decay if decays(owners[id(param)], name, param) else no_decay
        group["params"].append(param)
        group["names"].append(name)
    return [group for group in (decay, no_decay) if group["params"]]
