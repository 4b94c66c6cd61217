"""Process-wide settings that make training or inference fast on the CPU, made by one explicit call.

Importing tinyllm changes nothing global. `tune_for_training()` is what the trainer and most of
the CLI's commands call before their first kernel, `tune_for_inference()` what `tinyllm sample`
and `tinyllm chat` (token-by-token decoding) call; a library user may call either. They change
the allocator, the thread pools and (for training) BLAS's threads of the whole process, which a
library must not do behind its user's back. Numba fixes its threading layer at
the first parallel kernel launch, so the call must come before it; an explicit
NUMBA_THREADING_LAYER wins over both.

Why: Numba's workqueue threads sleep between kernels, and waking them costs ~0.1 ms a launch;
OpenMP's spin for a while after a kernel and start the next one in microseconds. Decoding one
token runs ~120 small quantized products back to back, each 3x as long on workqueue as on
OpenMP (SmolLM2-135M, one token: 73 ms a step instead of 49), so inference runs on OpenMP. A
training step runs big BLAS products between its Numba kernels, and NumPy's OpenBLAS has
threads of its own, which spin after each product: beside them OpenMP's spinning threads lost
the cores (85 ms a GPT preset step instead of 49), and workqueue's ran the attention kernels at
one thread's speed in most processes. So a tuned training process has one pool of threads:
BLAS single-threaded, its products split over Numba's OpenMP threads (kernels/matmul_panels.py).
`tinyllm embed` (whole batches, fused attention beside BLAS) tunes for training.
"""

from __future__ import annotations

import os

from tinyllm.backend.numpy_backend import keep_freed_memory


def tune_for_training(one_pool: bool = True) -> dict:
    """Return {"keeps_freed_memory": bool, "threading_layer": str, "blas_threads": int | None}
    after tuning the process:

    - glibc's malloc keeps freed array memory (see `backend.numpy_backend.keep_freed_memory`;
      TINYLLM_KEEP_MEMORY=0 vetoes it): the GPT preset's step was ~30% faster for it;
    - one pool of threads for the whole step: Numba's parallel kernels on OpenMP's threads
      (which spin a while after a kernel, and the step's next product or kernel comes within
      it), BLAS single-threaded ("blas_threads": 1), its products split over those threads by
      the matmul kernel `panels` (kernels/matmul_panels.py says why), which "auto" then picks
      on the CPU.

    Where Numba has no OpenMP, or NUMBA_THREADING_LAYER names another layer, or `one_pool` is
    False (the trainer and the CLI pass that under an MPI launcher: several ranks' spinning
    threads would share the cores), the kernels run on workqueue's sleeping threads and BLAS
    keeps its own ("blas_threads": None): workqueue's ~0.1 ms a launch is too much to pay on
    every product. The first call fixes Numba's layer; a later one cannot undo the first's.
    """
    if not one_pool:
        return _tune("workqueue") | {"blas_threads": 1 if _BLAS_LIMIT else None}
    layer = _tune("omp")
    if layer["threading_layer"] == "omp" and _openmp_loads():
        layer["blas_threads"] = _single_threaded_blas()
        return layer
    return _tune("workqueue") | {"blas_threads": None}


def tune_for_inference() -> dict:
    """Return {"keeps_freed_memory": bool, "threading_layer": str} after tuning the process: the
    allocator as `tune_for_training`, and Numba's parallel kernels on OpenMP's threads, which wake
    fast (see the module docstring); on workqueue where Numba has no OpenMP."""
    return _tune("omp")


def blas_on_numba_threads() -> bool:
    """Return whether `tune_for_training` made BLAS single-threaded, so that the matmul products
    are to be split over Numba's threads (matmul kernel `panels`)."""
    return bool(_BLAS_LIMIT)


_BLAS_LIMIT = []  # the threadpoolctl limit of `tune_for_training`, kept for the whole process


def _tune(layer: str) -> dict:
    import numba  # here, not at module level: `import tinyllm` does not load Numba for this

    chosen = os.environ.get("NUMBA_THREADING_LAYER")
    if chosen is None:
        if layer == "omp":  # "default" takes the first layer of the priority list that loads
            numba.config.THREADING_LAYER_PRIORITY = ["omp", "workqueue", "tbb"]  # tbb: never reached
            numba.config.THREADING_LAYER = "default"
        else:
            numba.config.THREADING_LAYER = layer
        chosen = layer
    return {"keeps_freed_memory": keep_freed_memory(), "threading_layer": chosen}


def _openmp_loads() -> bool:
    try:
        from numba.np.ufunc import omppool  # noqa: F401
    except ImportError:
        return False
    return True


def _single_threaded_blas() -> int:
    if not _BLAS_LIMIT:
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that Numba's np.dot calls, loaded now)
        from threadpoolctl import ThreadpoolController

        _BLAS_LIMIT.append(ThreadpoolController().limit(limits=1, user_api="blas"))
    return 1
