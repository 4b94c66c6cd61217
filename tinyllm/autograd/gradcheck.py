"""`gradcheck`: compare a function's autograd gradients with central finite differences.

The teaching tool behind the op tests. For y = fn(*inputs) and a random cotangent v, backward
gives dL/dx for L = sum(v * y); the same number is estimated by nudging each input element by
±eps and re-running fn. Use float64 inputs: in float32 the finite differences are too noisy.
"""

from __future__ import annotations

from tinyllm.autograd.grad_mode import no_grad
from tinyllm.autograd.tensor import Tensor
from tinyllm.backend import np


def numerical_grads(fn, inputs, cotangent, eps: float = 1e-6) -> list:
    """Return d sum(cotangent * fn(*inputs)) / d input, by central differences, as host arrays."""
    grads = []
    for t in inputs:
        if not t.requires_grad:
            grads.append(None)
            continue
        backend = t._backend
        host = np.array(backend.to_host(t.array), dtype=np.float64)
        grad = np.zeros_like(host)
        flat, flat_grad = host.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            values = []
            for shift in (eps, -eps):
                flat[i] = original + shift
                t.array = backend.from_host(host.astype(backend.to_host(t.array).dtype))
                with no_grad():
                    out = fn(*inputs)
                values.append(float(np.sum(backend.to_host(out.array).astype(np.float64) * cotangent)))
            flat[i] = original
            flat_grad[i] = (values[0] - values[1]) / (2 * eps)
        t.array = backend.from_host(host.astype(backend.to_host(t.array).dtype))
        grads.append(grad)
    return grads


def analytic_grads(fn, inputs, cotangent) -> list:
    """Return the gradients autograd computes for sum(cotangent * fn(*inputs)), as host arrays."""
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    backend = out._backend
    out.backward(Tensor._wrap(backend.from_host(cotangent.astype(out.numpy().dtype)), backend, False, None))
    return [
        None if not t.requires_grad else np.zeros(t.shape) if t.grad is None else t.grad.numpy().astype(np.float64)
        for t in inputs
    ]


def gradcheck(
    fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-4, raise_exception: bool = True
) -> bool:
    """Return True if autograd's gradients of fn match finite differences at `inputs`.

    fn takes the tensors in `inputs` and returns one tensor; only inputs with requires_grad are
    checked. On a mismatch it raises AssertionError naming the input and the largest error
    (or returns False with raise_exception=False).

    >>> x = tl.tensor([[1.0, 2.0]], dtype="float64", requires_grad=True)
    >>> tl.gradcheck(lambda t: (t * t).sum(), [x])
    True
    """
    with no_grad():
        out_shape = fn(*inputs).shape
    cotangent = np.random.default_rng(0).standard_normal(out_shape)  # its own stream: the user's seed stays put
    analytic = analytic_grads(fn, inputs, cotangent)
    numeric = numerical_grads(fn, inputs, cotangent, eps)
    for position, (a, n) in enumerate(zip(analytic, numeric)):
        if a is None:
            continue
        if not np.allclose(a, n, atol=atol, rtol=rtol):
            if raise_exception:
                error = float(np.max(np.abs(a - n)))
                raise AssertionError(
                    f"gradcheck: input {position} (shape {a.shape}) autograd and finite-difference "
                    f"gradients differ by up to {error:.3g}\nautograd:\n{a}\nfinite differences:\n{n}"
                )
            return False
    return True
