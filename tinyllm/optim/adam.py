"""Adam (Kingma & Ba) as PyTorch computes it: weight decay, if any, is an L2 term in the gradient."""

from __future__ import annotations

from tinyllm.optim.adamw import AdamW
from tinyllm.optim.optimizer import Optimizer


class Adam(AdamW):
    """m, v the moving moments of g + wd p;  p <- p - lr m_hat / (sqrt(v_hat) + eps).

    The update is AdamW's with `decoupled_weight_decay=False` (PyTorch's own flag): the same
    moments, only the place of the decay differs.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ):
        Optimizer.__init__(self, params, self._defaults(locals(), decoupled_weight_decay))
