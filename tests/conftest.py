"""Test configuration: hypothesis profiles chosen by $TINYLLM_HYPOTHESIS_PROFILE.

- `ci` (default): derandomized, so every run draws the same examples and a test that catches a
  broken engine catches it every time, not in a third of the runs; few examples per property by
  default (the whole suite fits in minutes on 2 cores), more where a test is cheap
  (`settings(max_examples=strategies.examples(n))` on the test);
- `thorough`: random examples, ten times as many, for a local deep check.
"""

import os

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
