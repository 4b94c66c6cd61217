"""Process-wide settings that make training or inference fast on the CPU, made by one explicit call.

Importing tinyllm changes nothing global. `tune_for_training()` is what the trainer and most of
the CLI's commands call before their first kernel, `tune_for_inference()` what `tinyllm sample`
and `tinyllm chat` (token-by-token decoding) call; a library user may call either. They change the allocator and the thread pool of the whole
process, which a library must not do behind its user's back. Numba fixes its threading layer at
the first parallel kernel launch, so the call must come before it; an explicit
NUMBA_THREADING_LAYER wins over both.

Why two: Numba's workqueue threads sleep between kernels, OpenMP's spin for a while. A training
step runs big BLAS products between its Numba kernels, and on a 2-core machine OpenMP's spinning
threads took the cores from OpenBLAS's (85 ms a GPT preset step instead of 49). Decoding one token
runs ~120 small quantized products back to back, and there waking the sleeping threads is the
cost: each product took 3x as long on workqueue as on OpenMP (SmolLM2-135M, one token: 73 ms a
step instead of 49). Inference over whole batches is like training here: MiniLM's forward on 32
sentences, fused attention beside BLAS, took 486-554 ms on OpenMP against 435-498 ms on
workqueue (two processes each, noisy; 389-427 ms with the reference attention), so
`tinyllm embed` tunes for training.
"""

from __future__ import annotations

import os

from tinyllm.backend.numpy_backend import keep_freed_memory


def tune_for_training() -> dict:
    """Return {"keeps_freed_memory": bool, "threading_layer": str} after tuning the process:

    - glibc's malloc keeps freed array memory (see `backend.numpy_backend.keep_freed_memory`;
      TINYLLM_KEEP_MEMORY=0 vetoes it): the GPT preset's step was ~30% faster for it;
    - Numba's parallel kernels run on the workqueue threading layer, whose idle threads sleep
      (see the module docstring).
    """
    return _tune("workqueue")


def tune_for_inference() -> dict:
    """Return {"keeps_freed_memory": bool, "threading_layer": str} after tuning the process: the
    allocator as `tune_for_training`, and Numba's parallel kernels on OpenMP's threads, which wake
    fast (see the module docstring); on workqueue where Numba has no OpenMP."""
    return _tune("omp")


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
