"""Test configuration: hypothesis profiles chosen by $TINYLLM_HYPOTHESIS_PROFILE.

- `ci` (default): derandomized, so every run draws the same examples and a test that catches a
  broken engine catches it every time, not in a third of the runs; few examples per property by
  default (the whole suite fits in minutes on 2 cores), more where a test is cheap
  (`settings(max_examples=strategies.examples(n))` on the test);
- `thorough`: random examples, ten times as many, for a local deep check.

The tests run Numba's parallel kernels on the workqueue threading layer, the one the trainer and
the CLI choose (`tinyllm.kernels.tune_for_training`), unless NUMBA_THREADING_LAYER says
otherwise. Left to itself Numba prefers TBB wherever the `tbb` package is installed (`mkl`
brings it), and TBB, which is not fork-safe, left the test process hanging at exit after the
suite's forked and threaded tests. tests/test_threading.py checks the layers in clean processes.
"""

import os

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("TINYLLM_HYPOTHESIS_PROFILE", "ci"))
