"""Choosing a kernel: `use(...)` to force one, `attention_kernel(...)`/`matmul(...)` to dispatch.

"auto" picks, per call, the fastest implementation that supports the arrays:
- attention: the fused Numba kernel for NumPy float32/float64 arrays whose (B, H, Tq, Tk) scores
  would have more than SMALL_SCORES elements (below that the reference is faster: it allocates
  little, and the fused kernel's fixed cost, mostly waking Numba's threads, dominates; e.g.
  KV-cache decoding with Tq = 1), the numba.cuda kernel for
  CuPy float32/float64 arrays with head dimension <= 128, and the plain reference otherwise
  (e.g. the "strict" device, float16);
- matmul: BLAS (`xp.matmul`) everywhere, because it beats our Numba and CUDA matmuls on every
  shape that benchmarks/bench_matmul.py measures; "numba" and "cuda" can be forced;
- norm_act (exact GELU and LayerNorm): the one-pass Numba kernels of `norm_act_cpu` for
  C-contiguous NumPy float32 arrays, the array code of the ops otherwise ("reference" forces it).

A forced kernel that cannot run the given arrays raises `DeviceError` instead of silently
running something else. The CUDA kernels accept NumPy arrays when NUMBA_ENABLE_CUDASIM=1 (the
numba.cuda simulator, which the tests use on machines without a GPU).
"""

from __future__ import annotations

import importlib
import os

from tinyllm.backend import backend_of, np
from tinyllm.errors import DeviceError
from tinyllm.kernels.attention_cuda import MAX_DEPTH as _CUDA_MAX_DEPTH  # numba.cuda loads lazily

ATTENTION_KERNELS = ("auto", "reference", "numba", "cuda")
MATMUL_KERNELS = ("auto", "blas", "numba", "cuda")
NORM_ACT_KERNELS = ("auto", "reference")
_MODULES = {
    ("attention", "reference"): "tinyllm.kernels.attention_reference",
    ("attention", "numba"): "tinyllm.kernels.attention_cpu",
    ("attention", "cuda"): "tinyllm.kernels.attention_cuda",
    ("matmul", "numba"): "tinyllm.kernels.matmul_cpu",
    ("matmul", "cuda"): "tinyllm.kernels.matmul_cuda",
}
_COMPILED_DTYPES = ("float32", "float64")
SMALL_SCORES = 2**18  # 1 MB of float32 scores
_selected = {"attention": "auto", "matmul": "auto", "norm_act": "auto"}


class use:  # noqa: N801  (a function-like name: `tinyllm.kernels.use(...)`)
    """Select kernels by name: `use(attention="reference")` sets them until changed, and
    `with use(matmul="numba"): ...` sets them for the block only. None leaves a choice as is."""

    def __init__(self, attention: str | None = None, matmul: str | None = None, norm_act: str | None = None) -> None:
        if norm_act is not None and norm_act not in NORM_ACT_KERNELS:
            raise ValueError(f"unknown norm_act kernel {norm_act!r}; expected one of {NORM_ACT_KERNELS}")
        if attention is not None and attention not in ATTENTION_KERNELS:
            raise ValueError(f"unknown attention kernel {attention!r}; expected one of {ATTENTION_KERNELS}")
        if matmul is not None and matmul not in MATMUL_KERNELS:
            raise ValueError(f"unknown matmul kernel {matmul!r}; expected one of {MATMUL_KERNELS}")
        self._previous = dict(_selected)
        if attention is not None:
            _selected["attention"] = attention
        if matmul is not None:
            _selected["matmul"] = matmul
        if norm_act is not None:
            _selected["norm_act"] = norm_act

    def __enter__(self) -> use:
        return self

    def __exit__(self, *exc) -> None:
        _selected.update(self._previous)


def selected(op: str) -> str:
    """Return the kernel name selected for "attention", "matmul" or "norm_act" ("auto" unless forced)."""
    return _selected[op]


def use_norm_act_kernel(array) -> bool:
    """Return whether GELU / LayerNorm on this array run the Numba kernels of norm_act_cpu."""
    return (
        _selected["norm_act"] == "auto"
        and type(array) is np.ndarray
        and array.dtype == np.float32
        and array.flags.c_contiguous
    )


def _simulated_cuda() -> bool:
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _resolve(op: str, array, n_scores: int = 0) -> str:
    """Return the concrete kernel name that runs `op` on arrays like `array` (n_scores: the
    size of attention's (B, H, Tq, Tk) scores)."""
    backend = backend_of(array)
    dtype = backend.dtype_name(array)
    name = _selected[op]
    if name == "auto":
        if op == "matmul":
            return "blas"
        if dtype in _COMPILED_DTYPES and backend.name in ("cpu", "cuda"):
            if backend.name == "cpu":
                return "numba" if n_scores > SMALL_SCORES else "reference"
            if array.shape[-1] <= _CUDA_MAX_DEPTH:
                return "cuda"
        return "reference"
    if name in ("reference", "blas"):
        return name
    if dtype not in _COMPILED_DTYPES:
        raise DeviceError(f"{op} kernel {name!r} needs float32 or float64 arrays, got {dtype}")
    wanted = "cpu" if name == "numba" else "cuda"
    if backend.name != wanted and not (name == "cuda" and backend.name == "cpu" and _simulated_cuda()):
        raise DeviceError(f"{op} kernel {name!r} needs arrays on device {wanted!r}, got {backend.name!r}")
    return name


def attention_kernel(q, k):
    """Return the attention kernel module for arrays q, k: it has `forward(q, k, v, bias,
    causal, scale) -> (out, saved)` and `backward(q, k, v, bias, causal, scale, out, saved,
    grad_out) -> (dq, dk, dv)` (see attention_reference for the exact semantics)."""
    n_scores = q.size // q.shape[-1] * k.shape[-2]  # B * H * Tq * Tk
    return importlib.import_module(_MODULES[("attention", _resolve("attention", q, n_scores))])


def matmul(a, b):
    """Return a @ b for raw arrays (..., n, k) @ (..., k, m) (batch axes broadcast, both at
    least 2-d) with the selected matmul kernel."""
    xp = backend_of(a).xp
    if _selected["matmul"] in ("auto", "blas"):  # the fast path of every matmul in the engine
        return xp.matmul(a, b)
    name = _resolve("matmul", a)
    matmul_2d = importlib.import_module(_MODULES[("matmul", name)]).matmul_2d
    if b.ndim == 2:  # (..., n, k) @ (k, m): one product over all leading rows
        c = matmul_2d(xp.reshape(a, (-1, a.shape[-1])), b)
        return xp.reshape(c, a.shape[:-1] + (b.shape[1],))
    batch = tuple(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    a_rows = xp.reshape(xp.broadcast_to(a, batch + a.shape[-2:]), (-1,) + a.shape[-2:])
    b_rows = xp.reshape(xp.broadcast_to(b, batch + b.shape[-2:]), (-1,) + b.shape[-2:])
    c = xp.stack([matmul_2d(a_rows[i], b_rows[i]) for i in range(a_rows.shape[0])])
    return xp.reshape(c, batch + c.shape[-2:])
