"""Choosing a kernel: `choose(family, *arrays)` returns the module that runs a family's op on
those arrays; `use(...)` forces a choice, globally or for a `with` block.

A family is a set of modules with the same functions (see kernels/__init__.py for the protocol):

| family    | functions                                   | modules by name                                 |
|-----------|---------------------------------------------|-------------------------------------------------|
| attention | forward, backward                           | reference, numba (attention_cpu), cuda          |
| matmul    | matmul (panels: also linear, linear_backward) | blas (matmul_blas), panels (matmul_panels), numba (matmul_cpu), cuda, mkl (matmul_mkl) |
| norm_act  | gelu_forward/backward, layer_norm_*         | reference, numba (norm_act_cpu)                 |
| cross_entropy | forward, backward                       | reference, numba (cross_entropy_cpu)            |
| adamw     | update (in place)                           | reference, numba (adamw_cpu)                    |
| qmatmul   | linear (inference only)                     | reference, numba (qmatmul_cpu)                  |

The environment variable TINYLLM_KERNELS sets choices at start-up, as `use` would, e.g.
`TINYLLM_KERNELS=matmul=mkl tinyllm train ...`.

"auto" picks, per call, the fastest module that supports the arrays:
- attention: the fused Numba kernel for NumPy float32/float64 arrays whose (B, H, Tq, Tk) scores
  would have more than SMALL_SCORES elements (below that the reference is faster: it allocates
  little, and the fused kernel's fixed cost, mostly its blocking and its backward's BLAS calls,
  dominates), or that have at most attention_cpu.FEW_ROWS query rows when no backward will run
  (`choose(..., inference=True)`: a KV-cache decoding step, whose forward the kernel runs in one
  task per head, 2.5x faster than the reference); the numba.cuda kernel for CuPy float32/float64
  arrays with head dimension <= 128, and the reference otherwise (e.g. the "strict" device,
  float16);
- matmul: BLAS (NumPy's) everywhere, because it beats our Numba and CUDA matmuls on every shape
  that benchmarks/bench_matmul.py measures; in a process tuned by `tune_for_training()`, where
  BLAS is single-threaded, the same BLAS split over Numba's threads (matmul_panels) on the CPU;
  MKL (matmul_mkl), faster still on some CPUs, is an optional package and runs only when
  forced: `use(matmul="mkl")`;
- norm_act: the Numba kernels for NumPy float32 arrays, the reference otherwise;
- cross_entropy: the Numba kernel for NumPy float32/float64 logits, the reference otherwise;
- adamw: the Numba kernel for C-contiguous NumPy float32/float64 parameters and moments of one
  dtype (it updates them in place), the reference otherwise;
- qmatmul: the Numba kernel for NumPy float32 inputs, the reference (dequantize, BLAS) otherwise.

A forced kernel that cannot run the given arrays raises `DeviceError` instead of silently
running something else. The CUDA kernels accept NumPy arrays when NUMBA_ENABLE_CUDASIM=1 (the
numba.cuda simulator, which the tests use on machines without a GPU).
"""

from __future__ import annotations

import importlib.util
import os
import sys

from tinyllm.backend import backend_of
from tinyllm.errors import ArgumentError, DeviceError, UnsupportedError
from tinyllm.kernels import (  # numba.cuda is imported only when a CUDA kernel first runs
    adamw_reference,
    attention_cuda,
    attention_reference,
    cross_entropy_reference,
    matmul_blas,
    matmul_cuda,
    matmul_mkl,
    norm_act_reference,
    qmatmul_reference,
    runtime,
)


def _lazy(name: str):
    """Return the module `tinyllm.kernels.<name>`, executed on its first attribute access.

    The compiled kernels import Numba, which (with the SciPy it pulls in) was half of the time of
    `import tinyllm`; this way a program that never runs one, `tinyllm --help` say, never loads
    it. The object is the real module (importlib's LazyLoader), so `is` comparisons hold.
    """
    full_name = f"tinyllm.kernels.{name}"
    if full_name in sys.modules:
        return sys.modules[full_name]
    spec = importlib.util.find_spec(full_name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full_name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules["tinyllm.kernels"], name, module)
    return module


adamw_cpu = _lazy("adamw_cpu")
attention_cpu = _lazy("attention_cpu")
cross_entropy_cpu = _lazy("cross_entropy_cpu")
matmul_cpu = _lazy("matmul_cpu")
matmul_panels = _lazy("matmul_panels")
norm_act_cpu = _lazy("norm_act_cpu")
qmatmul_cpu = _lazy("qmatmul_cpu")

FAMILIES = {
    "attention": {"reference": attention_reference, "numba": attention_cpu, "cuda": attention_cuda},
    "matmul": {
        "blas": matmul_blas,
        "panels": matmul_panels,
        "numba": matmul_cpu,
        "cuda": matmul_cuda,
        "mkl": matmul_mkl,
    },
    "norm_act": {"reference": norm_act_reference, "numba": norm_act_cpu},
    "cross_entropy": {"reference": cross_entropy_reference, "numba": cross_entropy_cpu},
    "adamw": {"reference": adamw_reference, "numba": adamw_cpu},
    "qmatmul": {"reference": qmatmul_reference, "numba": qmatmul_cpu},
}
# At 196,608 scores (the GPT preset's B 12, H 4, T 64; B 8, H 6, T 64) the fused kernel's
# forward+backward is 1.45x faster than the reference with 2 threads (benchmarks/bench_attention.py),
# and the preset's training step no slower (127 vs 142 ms, 131 vs 130 ms in two runs): the
# threshold sits below that.
SMALL_SCORES = 2**16


def _from_environment() -> dict[str, str]:
    """Return the choices of $TINYLLM_KERNELS, e.g. "matmul=mkl,attention=numba": how a program
    that does not call `use` itself (the `tinyllm` command line, say) is run with other kernels."""
    text = os.environ.get("TINYLLM_KERNELS", "").strip()
    choices = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        family, _, name = part.partition("=")
        family, name = family.strip(), name.strip()
        if family not in FAMILIES or (name != "auto" and name not in FAMILIES[family]):
            expected = ", ".join(f"{f}={'|'.join(['auto', *FAMILIES[f]])}" for f in FAMILIES)
            raise ArgumentError(f"TINYLLM_KERNELS: cannot read {part!r}; expected family=kernel pairs, of {expected}")
        choices[family] = name
    return choices


_selected = dict.fromkeys(FAMILIES, "auto") | _from_environment()


class use:  # noqa: N801  (a function-like name: `tinyllm.kernels.use(...)`)
    """Select kernels by family: `use(attention="reference")` sets them until changed, and
    `with use(matmul="numba"): ...` for the block only. None leaves a choice as it is."""

    def __init__(self, **choices: str | None) -> None:
        for family, name in choices.items():
            if family not in FAMILIES:
                raise ArgumentError(f"unknown kernel family {family!r}; expected one of {sorted(FAMILIES)}")
            if name is not None and name != "auto" and name not in FAMILIES[family]:
                expected = ["auto", *FAMILIES[family]]
                raise ArgumentError(f"unknown {family} kernel {name!r}; expected one of {expected}")
        self._previous = dict(_selected)
        _selected.update({family: name for family, name in choices.items() if name is not None})

    def __enter__(self) -> use:
        return self

    def __exit__(self, *exc) -> None:
        _selected.clear()
        _selected.update(self._previous)


def selected(family: str) -> str:
    """Return the kernel name selected for a family ("auto" unless forced)."""
    return _selected[family]


def choose(family: str, *arrays, inference: bool = False):
    """Return the module of `family` that runs on these arrays: the forced one, or auto's pick.

    For attention, arrays are (q, k); for matmul (a, b); for norm_act the op's inputs; for
    cross_entropy the logits; for qmatmul the input; for adamw (param, grad, exp_avg, exp_avg_sq).
    `inference=True` says that no backward will run (auto may then pick a kernel by its forward).
    """
    name = _selected[family]
    if name == "auto":
        name = _auto(family, arrays, inference)
    else:
        _check_forced(family, name, arrays[0])
    return FAMILIES[family][name]


def _auto(family: str, arrays, inference: bool = False) -> str:
    first = arrays[0]
    backend = backend_of(first)
    if family == "matmul":
        return "panels" if backend.name == "cpu" and runtime.blas_on_numba_threads() else "blas"
    dtype = backend.dtype_name(first)
    if family == "norm_act":
        if backend.name != "cpu" or dtype != "float32":
            return "reference"
        for a in arrays:  # NumPy float32 arrays all (an op's inputs share one backend)
            if a.dtype != first.dtype or backend_of(a) is not backend:
                return "reference"
        return "numba"
    if family in ("cross_entropy", "qmatmul"):
        return "numba" if backend.name == "cpu" and dtype in FAMILIES[family]["numba"].DTYPES else "reference"
    if family == "adamw":
        if backend.name != "cpu" or dtype not in adamw_cpu.DTYPES:
            return "reference"
        param, grad, *moments = arrays
        in_place = all(a.dtype == param.dtype and a.flags.c_contiguous for a in (param, *moments))
        return "numba" if in_place and backend_of(grad) is backend else "reference"
    # attention
    if dtype in attention_cpu.DTYPES and backend.name == "cpu":
        q, k = arrays
        n_scores = q.size // q.shape[-1] * k.shape[-2]  # B * H * Tq * Tk
        decoding = inference and q.shape[-2] <= attention_cpu.FEW_ROWS
        return "numba" if n_scores > SMALL_SCORES or decoding else "reference"
    if dtype in attention_cuda.DTYPES and backend.name == "cuda" and first.shape[-1] <= attention_cuda.MAX_DEPTH:
        return "cuda"
    return "reference"


def _check_forced(family: str, name: str, array) -> None:
    module = FAMILIES[family][name]
    device = getattr(module, "DEVICE", None)
    if device is None:  # reference and BLAS kernels run on every backend
        return
    if not getattr(module, "available", lambda: True)():
        raise UnsupportedError(f"{family} kernel {name!r} is not installed: {module.INSTALL}")
    backend = backend_of(array)
    dtype = backend.dtype_name(array)
    if dtype not in module.DTYPES:
        raise DeviceError(f"{family} kernel {name!r} needs arrays of dtype {' or '.join(module.DTYPES)}, got {dtype}")
    simulated = device == "cuda" and backend.name == "cpu" and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    if backend.name != device and not simulated:
        raise DeviceError(f"{family} kernel {name!r} needs arrays on device {device!r}, got {backend.name!r}")
