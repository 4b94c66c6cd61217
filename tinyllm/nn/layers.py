"""The basic layers, with PyTorch's constructors and initialization: Identity, Linear, Embedding,
LayerNorm, RMSNorm, Dropout, and the activation modules.

Activations take PyTorch's `inplace` flag but compute out of place: the result is the same, the
input is left as it was.
"""

from __future__ import annotations

import math

from tinyllm import ops
from tinyllm.autograd.tensor import Tensor
from tinyllm.errors import UnsupportedError
from tinyllm.nn import functional as F
from tinyllm.nn import init
from tinyllm.nn.module import Module, Parameter
from tinyllm.validate import check_float, check_int


def _placed(module: Module, device, dtype) -> None:
    """Move a freshly built module's weights to device and dtype, when given."""
    if device is not None or dtype is not None:
        module.to(device=device, dtype=dtype)


def _as_shape(normalized_shape) -> tuple:
    if isinstance(normalized_shape, int):
        return (check_int("normalized_shape", normalized_shape, minimum=1),)
    return tuple(check_int("normalized_shape", n, minimum=1) for n in normalized_shape)


class Identity(Module):
    """Return the input unchanged (any constructor arguments are ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x


class Linear(Module):
    """y = x @ W.T + b, with W (out_features, in_features), initialized as in PyTorch: W and b
    uniform on +-1/sqrt(in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, minimum=0)
        self.out_features = check_int("out_features", out_features, minimum=0)
        self.weight = Parameter(ops.zeros(out_features, in_features))
        self.bias = Parameter(ops.zeros(out_features)) if bias else None
        self.reset_parameters()
        _placed(self, device, dtype)

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.in_features) if self.in_features else 0.0
        init.uniform_(self.weight, -bound, bound)  # = kaiming_uniform_(a=sqrt(5)), PyTorch's choice
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)  # F.linear without its keyword handling

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of num_embeddings vectors of size embedding_dim, looked up by integer id, N(0, 1)
    initialized; the row of padding_idx starts at zero and gets no gradient."""

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Tensor | None = None,
        _freeze: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, minimum=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, minimum=0)
        for name, value in (("max_norm", max_norm), ("scale_grad_by_freq", scale_grad_by_freq or None)):
            if value is not None:
                raise UnsupportedError(f"nn.Embedding does not support the argument {name!r}")
        if sparse:
            raise UnsupportedError("nn.Embedding does not support the argument 'sparse' (gradients are dense)")
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, -num_embeddings, num_embeddings - 1) % num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(ops.randn(num_embeddings, embedding_dim), requires_grad=not _freeze)
            if padding_idx is not None:
                with_zero_row = self.weight.numpy().copy()
                with_zero_row[padding_idx] = 0.0
                init._fill(self.weight, with_zero_row)
        else:
            self.weight = Parameter(_weight, requires_grad=not _freeze)
        _placed(self, device, dtype)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None) -> Embedding:
        """Return an Embedding holding the given (num_embeddings, embedding_dim) table."""
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, _weight=embeddings, _freeze=freeze)

    def forward(self, ids: Tensor) -> Tensor:
        return F.embedding(ids, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class LayerNorm(Module):
    """Normalize the last len(normalized_shape) axes to zero mean and unit variance, then scale
    and shift (weight ones, bias zeros; neither with elementwise_affine=False)."""

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = check_float("eps", eps, minimum=0.0)
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(ops.ones(self.normalized_shape)) if elementwise_affine else None
        self.bias = Parameter(ops.zeros(self.normalized_shape)) if elementwise_affine and bias else None
        _placed(self, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        if len(self.normalized_shape) == 1 and self.weight is not None and self.bias is not None:
            # the common case, checked once in __init__: straight to the op (which still checks
            # that the weight fits x), without F.layer_norm's argument handling
            return ops.layer_norm(x, self.weight, self.bias, self.eps)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class RMSNorm(Module):
    """Scale the last len(normalized_shape) axes by their root mean square, then by a learned
    weight (Llama); eps=None means the machine epsilon of the input's dtype, as in PyTorch."""

    def __init__(
        self, normalized_shape, eps: float | None = None, elementwise_affine: bool = True, device=None, dtype=None
    ) -> None:
        super().__init__()
        self.normalized_shape = _as_shape(normalized_shape)
        self.eps = None if eps is None else check_float("eps", eps, minimum=0.0)
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(ops.ones(self.normalized_shape)) if elementwise_affine else None
        _placed(self, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Zero elements with probability p while training, scaling the rest by 1/(1-p); the
    identity in eval mode."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        self.p = check_float("p", p, 0.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:  # the identity: skip the call (a decoding step has 9)
            return x
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(x)


class GELU(Module):
    """GELU, exact ("none") or in its tanh approximation ("tanh")."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return F.silu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return F.sigmoid(x)


class Softmax(Module):
    """Softmax along dim (None: PyTorch's legacy choice, 0 for 0-, 1- and 3-d inputs, else 1)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(x, self.dim)
