"""Looking inside a running model: every named activation of GPT, BERT or Llama, and changing one
in flight.

    logits, cache = run_with_cache(model, ids)
    cache["blocks.0.attn.pattern"]     # (B, H, T, T): layer 0's attention probabilities
    cache["blocks.5.resid_post"]       # (B, T, C): the residual stream after block 5

The names, for block i (`blocks.{i}.`):

    resid_pre      the block's input (B, T, C): the residual stream before it
    attn.pattern   the attention probabilities (B, H, T, Tk) the block's queries put on the keys
    attn_out       what attention adds to the stream (B, T, C), after its output projection
    resid_mid      the stream between attention and MLP (B, T, C)
    mlp_out        what the MLP adds (B, T, C)
    resid_post     the block's output (B, T, C)

and `embed` (the token embeddings, (B, T, C)), `ln_final` (the final norm's output; GPT and
Llama). For BERT, whose blocks normalize after adding (post-LN), `resid_mid` and `resid_post` are
the normalized streams, and `attn_out` / `mlp_out` are the projections before the addition.

Everything is read through forward hooks on the model's own modules (`Module.register_forward_hook`),
so the values are the tensors the model computes with. The attention pattern is recomputed from
the queries and keys that reach the attention kernel (`DotProductAttention`), with the reference
softmax of `tinyllm.kernels.attention_reference`; the fused kernels never form it.
"""

# ruff: noqa: N806 - B, T, H, D: the field's names for tensor sizes
from __future__ import annotations

import math
from collections.abc import Callable

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np
from tinyllm.errors import ArgumentError, UnsupportedError
from tinyllm.kernels.attention_reference import mask_to_bias, probabilities
from tinyllm.models.bert import BERT
from tinyllm.models.gpt import GPT
from tinyllm.models.llama import Llama
from tinyllm.nn import functional as F
from tinyllm.nn.module import Module


def _block_parts(model: Module, block: Module) -> tuple:
    """Return where a block's activations are read: (attention output module, the attention
    kernel's module, its number of query heads, (module, side) of resid_mid, MLP output module)."""
    if isinstance(model, GPT):
        return block.attn, block.attn.attend, block.attn.n_head, (block.ln_2, "input"), block.mlp
    if isinstance(model, Llama):
        return block.attn, block.attn.attend, block.attn.n_head, (block.mlp_norm, "input"), block.mlp
    attention = block.attention  # BERT: post-LN, the stream is the normalized output
    return attention.output, attention.attend, attention.n_head, (attention, "output"), block.output


def _sites(model: Module) -> dict[str, tuple[Module, str | int]]:
    """Return {activation name: (module, where)} of where each activation is read: "input" (the
    first argument), "output", or, for attention patterns, the number of query heads."""
    if isinstance(model, GPT):
        blocks, first, last = model.h, model.wte, model.ln_f
    elif isinstance(model, Llama):
        blocks, first, last = model.layers, model.embed, model.norm
    elif isinstance(model, BERT):
        blocks, first, last = model.layers, model.embeddings, None
    else:
        raise UnsupportedError(f"run_with_cache knows GPT, BERT and Llama, got {type(model).__name__}")
    sites = {"embed": (first, "output")}
    for i, block in enumerate(blocks):
        attn_out, attend, heads, resid_mid, mlp_out = _block_parts(model, block)
        sites[f"blocks.{i}.resid_pre"] = (block, "input")
        sites[f"blocks.{i}.attn.pattern"] = (attend, heads)
        sites[f"blocks.{i}.attn_out"] = (attn_out, "output")
        sites[f"blocks.{i}.resid_mid"] = resid_mid
        sites[f"blocks.{i}.mlp_out"] = (mlp_out, "output")
        sites[f"blocks.{i}.resid_post"] = (block, "output")
    if last is not None:
        sites["ln_final"] = (last, "output")
    return sites


def activation_names(model: Module) -> list[str]:
    """Return the names of every activation `run_with_cache` records for this model, in order."""
    return list(_sites(model))


def attention_pattern(q: Tensor, k: Tensor, attn_mask: Tensor | None, is_causal: bool, heads: int) -> Tensor:
    """Return the attention probabilities (B, heads, T, Tk) for the q (B, H', R, D), k (B, H', Tk, D)
    given to the attention kernel, where R = (heads / H') * T rows hold the queries of the heads
    that share one key head (Llama's grouped-query layout; R = T for GPT and BERT)."""
    xp = q._backend.xp
    bias = None if attn_mask is None else mask_to_bias(attn_mask.array, q.array)
    probs = probabilities(xp, q.array, k.array, bias, is_causal, 1.0 / math.sqrt(q.shape[-1]))
    B, _, R, Tk = probs.shape  # (B, H', R, Tk)
    T = R * q.shape[1] // heads
    return Tensor._wrap(xp.reshape(probs, (B, heads, T, Tk)), q._backend, False, None)  # (B, heads, T, Tk)


def run_with_cache(
    model: Module,
    ids,
    hooks: dict[str, Callable] | None = None,
    names: list[str] | None = None,
    **forward_kwargs,
) -> tuple:
    """Return (the model's output, {name: activation Tensor}) for one forward pass on ids (B, T).

    The output is the logits (B, T, V) of GPT and Llama, BERT's `BertOutput`. `hooks` maps an
    activation name to `fn(tensor) -> tensor or None`, called in flight: a returned tensor
    replaces the activation for the rest of the forward pass (and in the cache). A changed
    `attn.pattern` (B, H, T, Tk) is multiplied with the values in place of the kernel's result.
    `names` restricts what is recorded (default: everything in `activation_names(model)`).
    Runs under `no_grad`, without a KV cache.
    """
    sites = _sites(model)
    hooks = dict(hooks or {})
    unknown = sorted(set(hooks) - set(sites)) + sorted(set(names or ()) - set(sites))
    if unknown:
        raise ArgumentError(f"run_with_cache: unknown activation names {unknown}; see activation_names(model)")
    wanted = set(sites if names is None else names) | set(hooks)
    cache: dict[str, Tensor] = {}
    rows = tuple(ids.shape if isinstance(ids, Tensor) else np.shape(ids))  # (B, T)
    handles = []
    for name, (module, where) in sites.items():
        if name in wanted:
            handles.append(_register(module, where, rows, name, cache, hooks.get(name)))
    try:
        with no_grad():
            output = model(ids, **forward_kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return output, {name: cache[name] for name in sites if name in cache}


def _register(module: Module, where: str | int, rows: tuple, name: str, cache: dict, hook: Callable | None):
    """Attach a forward (pre-)hook to module that records, and optionally replaces, one activation;
    rows (B, T) unfolds the (B*T, C) outputs of BERT's projections."""

    def record(value: Tensor) -> Tensor | None:
        changed = None if hook is None else hook(value)
        cache[name] = value if changed is None else changed
        return changed

    if where == "input":

        def pre_hook(_module, args):
            changed = record(args[0])
            return None if changed is None else (changed, *args[1:])

        return module.register_forward_pre_hook(pre_hook)
    if where == "output":

        def output_hook(_module, _args, output):
            value = output
            reshaped = output.ndim == 2  # BERT's projections work on (B*T, C) rows
            if reshaped:
                value = output.reshape(rows + (output.shape[-1],))  # (B, T, C)
            changed = record(value)
            if changed is None:
                return None
            return changed.reshape(output.shape) if reshaped else changed

        return module.register_forward_hook(output_hook)

    def pattern_hook(attend, args, output):
        q, k, v = args[0], args[1], args[2]
        attn_mask = args[3] if len(args) > 3 else None
        is_causal = bool(args[4]) if len(args) > 4 else False
        pattern = attention_pattern(q, k, attn_mask, is_causal, where)  # (B, H, T, Tk)
        changed = record(pattern)
        if changed is None:
            return None
        grouped = changed.reshape(q.shape[:3] + (k.shape[2],))  # back to the kernel's (B, H', R, Tk)
        return grouped @ v  # (B, H', R, D)

    return module.register_forward_hook(pattern_hook)


def logit_lens(model: Module, ids) -> Tensor:
    """Return the logits (n_layer, B, T, V) of each block's output read through the model's final
    norm and output head: what the model would predict if it stopped after that block.

    The last entry equals the model's own logits. GPT and Llama only (BERT has no output head).
    """
    if not isinstance(model, (GPT, Llama)):
        raise UnsupportedError(
            f"the logit lens needs a decoder with an output head (GPT, Llama), got {type(model).__name__}"
        )
    n_layer = len(model.h if isinstance(model, GPT) else model.layers)
    names = [f"blocks.{i}.resid_post" for i in range(n_layer)]
    _, cache = run_with_cache(model, ids, names=names)
    final_norm = model.ln_f if isinstance(model, GPT) else model.norm
    embedding = model.wte if isinstance(model, GPT) else model.embed
    head = embedding.weight if model.lm_head is None else model.lm_head.weight  # (V, C)
    with no_grad():
        per_layer = [F.linear(final_norm(cache[name]), head) for name in names]  # each (B, T, V)
    return F.stack(per_layer, axis=0)  # (n_layer, B, T, V)
