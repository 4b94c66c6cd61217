"""Process-wide settings that make training fast on the CPU, made by one explicit call.

Importing tinyllm changes nothing global. `tune_for_training()` is what the trainer and the CLI
call before their first step, and what a library user may call: it changes the allocator and the
thread pool of the whole process, which a library must not do behind its user's back.
"""

from __future__ import annotations

import os

from tinyllm.backend.numpy_backend import keep_freed_memory


def tune_for_training() -> dict:
    """Return {"keeps_freed_memory": bool, "threading_layer": str} after tuning the process:

    - glibc's malloc keeps freed array memory (see `backend.numpy_backend.keep_freed_memory`;
      TINYLLM_KEEP_MEMORY=0 vetoes it): the GPT preset's step was ~30% faster for it;
    - Numba's parallel kernels run on the workqueue threading layer, whose idle threads sleep.
      OpenMP's (Numba's default here) spin, and beside OpenBLAS's own spinning threads on a
      2-core machine that made the training step with the fused attention kernel 85 ms instead of
      49. An explicit NUMBA_THREADING_LAYER wins. The layer is fixed by the first parallel kernel
      launch, so this call must come before it.
    """
    import numba  # here, not at module level: `import tinyllm` does not load Numba for this

    layer = os.environ.get("NUMBA_THREADING_LAYER")
    if layer is None:
        layer = numba.config.THREADING_LAYER = "workqueue"
    return {"keeps_freed_memory": keep_freed_memory(), "threading_layer": layer}
