"""`nn.utils`: gradient clipping over a set of parameters, as PyTorch computes it."""

from __future__ import annotations

import math
from collections.abc import Iterable

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import GraphError
from tinyllm.ops import tensor as make_tensor
from tinyllm.validate import check_float


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Return the total norm of all gradients together (a 0-d float32 tensor), as one vector;
    scale every gradient in place by min(1, max_norm / (norm + 1e-6)).

    norm_type is p of the p-norm (inf for the largest absolute value). `foreach` only chooses an
    implementation in PyTorch and is accepted as is.
    """
    max_norm = check_float("max_norm", max_norm, minimum=0.0)
    norm_type = check_float("norm_type", norm_type, above=0.0, allow_inf=True)
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return make_tensor(0.0)
    if math.isinf(norm_type):
        total = max(float(g._backend.xp.max(g._backend.xp.abs(g.array))) for g in grads if g.numel())
    else:
        sums = [float(g._backend.xp.sum(g._backend.xp.abs(g.array) ** norm_type)) for g in grads]
        total = math.fsum(sums) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise GraphError(f"the total gradient norm is {total}; clip_grad_norm_(error_if_nonfinite=True) refuses it")
    coefficient = min(1.0, max_norm / (total + 1e-6))
    with no_grad():
        for grad in grads:
            grad.mul_(coefficient)
    return make_tensor(total)
