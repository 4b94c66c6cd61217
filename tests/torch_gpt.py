"""A PyTorch twin of tinyllm's GPT, written from scratch in torch, for parity tests and benchmarks.

Same architecture and the same parameter names as `tinyllm.models.gpt.GPT`, so
`TorchGPT.from_tinyllm(model)` (or `load_tinyllm_state(state_dict)`) copies weights across
exactly; `no_decay_names` / `decay_names` give the same AdamW groups as tinyllm's optimizer.
"""

# ruff: noqa: N803, N806 - B, T, C, H, D: the field's names for tensor sizes (the house convention for model code)

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_GELU = {"gelu": "none", "gelu_tanh": "tanh"}


def sinusoidal_table(max_len: int, dim: int) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d))."""
    table = torch.zeros(max_len, dim, dtype=torch.float64)
    pos = torch.arange(max_len, dtype=torch.float64)[:, None]
    for i in range(0, dim, 2):
        angle = pos[:, 0] / 10000.0 ** (i / dim)
        table[:, i] = torch.sin(angle)
        if i + 1 < dim:
            table[:, i + 1] = torch.cos(angle)
    return table.float()


class TorchAttention(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class TorchMLP(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.approximate = _GELU[cfg.activation]
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class TorchBlock(nn.Module):
    def __init__(self, cfg) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.attn = TorchAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        self.mlp = TorchMLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    """GPT in PyTorch with tinyllm's parameter names (`wte`, `wpe`, `h.i.*`, `ln_f`)."""

    def __init__(self, cfg) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.positional == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        else:
            self.register_buffer("pe_table", sinusoidal_table(cfg.block_size, cfg.n_embd), persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(TorchBlock(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        T = idx.shape[1]
        pos = self.wpe.weight[:T] if self.cfg.positional == "learned" else self.pe_table[:T]
        x = self.drop(self.wte(idx) + pos)
        for block in self.h:
            x = block(x)
        x = self.ln_f(x)
        head = self.wte.weight if self.cfg.tie_embeddings else self.lm_head.weight
        return x @ head.T

    @torch.no_grad()
    def load_tinyllm_state(self, state: dict) -> None:
        """Copy a tinyllm GPT state dict ({name: NumPy array}) into this model."""
        own = dict(self.named_parameters())
        if set(own) != set(state):
            raise KeyError(f"state dicts differ: {sorted(set(own) ^ set(state))}")
        for name, param in own.items():
            param.copy_(torch.from_numpy(np.ascontiguousarray(state[name])))

    @classmethod
    def from_tinyllm(cls, model) -> TorchGPT:
        twin = cls(model.config)
        twin.load_tinyllm_state(model.state_dict())
        return twin


def is_no_decay(name: str, param) -> bool:
    """No weight decay on biases, norms and embeddings (all parameters of fewer than 2 dims, and
    the embedding tables)."""
    return param.ndim < 2 or name.startswith("wte") or name.startswith("wpe") or ".ln_" in name or "ln_f" in name


def adamw_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Return torch.optim parameter groups: decay on matrices, none on biases, norms, embeddings."""
    decay = [p for n, p in model.named_parameters() if not is_no_decay(n, p)]
    no_decay = [p for n, p in model.named_parameters() if is_no_decay(n, p)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
