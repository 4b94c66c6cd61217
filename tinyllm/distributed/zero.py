"""`ZeroAdamW`: AdamW with its moments split across the ranks (ZeRO stage 1).

All parameters are laid out in one flat vector (optimizer order, padded to a multiple of
world_size) cut into world_size equal shards. A step reduce-scatters the gradients (rank r
receives the mean gradient of shard r only), updates shard r with AdamW's exact arithmetic
(the moments exist for that shard only: optimizer memory per rank is 2 * n_params / world_size
numbers instead of 2 * n_params), and all-gathers the updated shards into every replica.

The parameter groups are one contiguous range each of the flat vector, so a shard meets each
group in one slice and the update runs with the group's scalar hyper-parameters, bit for bit as
`AdamW._update`. `state_dict()` (a collective: every rank must call it) gathers the shards into
AdamW's own format, so a checkpoint resumes with or without ZeRO and on any number of ranks.
"""

from __future__ import annotations

import math

from tinyllm.backend import np
from tinyllm.distributed.communicator import Communicator
from tinyllm.errors import UnsupportedError
from tinyllm.optim import AdamW


class ZeroAdamW:
    """Shards the state of an AdamW across comm's ranks; the AdamW gives the groups and hyper-parameters."""

    def __init__(self, optimizer: AdamW, comm: Communicator) -> None:
        if not isinstance(optimizer, AdamW):
            raise UnsupportedError(f"ZeRO-1 shards AdamW's moments; got a {type(optimizer).__name__}")
        self.inner, self.comm = optimizer, comm
        self.param_groups = optimizer.param_groups
        self.params = [param for group in self.param_groups for param in group["params"]]
        kinds = {(param._backend.name, param.dtype) for param in self.params}
        if len(kinds) != 1:
            raise UnsupportedError(f"ZeRO-1 needs every parameter on one device with one dtype, got {sorted(kinds)}")
        self.backend = self.params[0]._backend
        xp, dtype = self.backend.xp, self.params[0].array.dtype
        self.offsets, self.group_ranges, total = [], [], 0
        for group in self.param_groups:
            start = total
            for param in group["params"]:
                self.offsets.append(total)
                total += param.numel()
            self.group_ranges.append((start, total))
        self.n_elements = total
        padded = -(-total // comm.world_size) * comm.world_size
        self.shard_start, self.shard_stop = comm.block(padded)
        self.flat_grads = xp.zeros((padded,), dtype=dtype)
        self.flat_params = xp.zeros((padded,), dtype=dtype)
        self.shard_grad = xp.zeros((self.shard_stop - self.shard_start,), dtype=dtype)
        self.exp_avg = xp.zeros_like(self.shard_grad)
        self.exp_avg_sq = xp.zeros_like(self.shard_grad)
        self.steps = 0
        self._reduced = False

    def zero_grad(self) -> None:
        self.inner.zero_grad()
        self._reduced = False

    def _reduce_gradients(self) -> None:
        """Reduce-scatter the gradients (zeros for a parameter without one) once per step."""
        if self._reduced:
            return
        xp = self.backend.xp
        for param, offset in zip(self.params, self.offsets):
            n = param.numel()
            grad = param.grad
            self.flat_grads[offset : offset + n] = 0 if grad is None else xp.reshape(grad.array, (n,))
        self.comm.reduce_scatter_mean(self.flat_grads, self.shard_grad)
        self._reduced = True

    def clip_grad_norm(self, max_norm: float, eps: float = 1e-6) -> float:
        """Return the global norm of the mean gradient before clipping; scale this rank's shard if it exceeds max_norm."""
        self._reduce_gradients()
        xp = self.backend.xp
        squares = np.array([float(xp.sum(self.shard_grad * self.shard_grad))], dtype=np.float64)
        self.comm.allreduce_mean_(squares)
        total_norm = math.sqrt(float(squares[0]) * self.comm.world_size)
        scale = max_norm / (total_norm + eps)
        if scale < 1.0:
            self.shard_grad = self.shard_grad * scale
        return total_norm

    def step(self) -> None:
        """Update this rank's shard with AdamW, then all-gather every shard into the parameters."""
        self._reduce_gradients()
        xp = self.backend.xp
        self.steps += 1
        step, first = self.steps, self.shard_start
        for param, offset in zip(self.params, self.offsets):
            n = param.numel()
            self.flat_params[offset : offset + n] = xp.reshape(param.array, (n,))
        for group, (start, stop) in zip(self.param_groups, self.group_ranges):
            lo, hi = max(start, self.shard_start) - first, min(stop, self.shard_stop) - first
            if lo >= hi:
                continue
            lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            grad, m, v = self.shard_grad[lo:hi], self.exp_avg[lo:hi], self.exp_avg_sq[lo:hi]
            data = self.flat_params[first + lo : first + hi]
            if weight_decay:
                data = data * (1 - lr * weight_decay)  # as AdamW._update, operation by operation
            m = m + (grad - m) * (1 - beta1)
            v = v * beta2 + grad * grad * (1 - beta2)
            step_size = lr / (1 - beta1**step)
            denominator = xp.sqrt(v) / math.sqrt(1 - beta2**step) + eps
            self.flat_params[first + lo : first + hi] = data - step_size * (m / denominator)
            self.exp_avg[lo:hi], self.exp_avg_sq[lo:hi] = m, v
        self.comm.allgather_(self.flat_params)
        for param, offset in zip(self.params, self.offsets):
            view = xp.reshape(self.flat_params[offset : offset + param.numel()], param.shape)
            param.array = xp.asarray(view, copy=True)
        self._reduced = False

    # -- state dict: AdamW's format ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """Return AdamW's state dict of the whole model (collective: gathers every rank's moments)."""
        full = {}
        for name, shard in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            gathered = self.backend.xp.zeros_like(self.flat_params)
            gathered[self.shard_start : self.shard_stop] = shard
            self.comm.allgather_(gathered)
            full[name] = gathered
        xp = self.backend.xp
        if self.steps:
            self.inner.state = {
                index: {"step": self.steps}
                | {name: xp.reshape(full[name][offset : offset + param.numel()], param.shape) for name in full}
                for index, (param, offset) in enumerate(zip(self.params, self.offsets))
            }
        try:
            return self.inner.state_dict()
        finally:
            self.inner.state = {}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore from AdamW's state dict (checked by AdamW), keeping this rank's shard of the moments."""
        self.inner.load_state_dict(state_dict)
        state, self.inner.state = self.inner.state, {}
        self.steps = max((s.get("step", 0) for s in state.values()), default=0)
        xp = self.backend.xp
        for name, target in (("exp_avg", self.exp_avg), ("exp_avg_sq", self.exp_avg_sq)):
            full = xp.zeros_like(self.flat_params)
            for index, (param, offset) in enumerate(zip(self.params, self.offsets)):
                if name in state.get(index, {}):
                    full[offset : offset + param.numel()] = xp.reshape(state[index][name], (param.numel(),))
            target[...] = full[self.shard_start : self.shard_stop]
        self._reduced = False

    def shard_numel(self) -> int:
        """Return how many numbers of each moment this rank keeps (its shard of the flat vector)."""
        return int(self.exp_avg.size)
