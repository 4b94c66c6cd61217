"""Test configuration: hypothesis profiles chosen by $TINYLLM_HYPOTHESIS_PROFILE.

- `ci` (default): few examples per property, so the whole suite fits in minutes on 2 cores;
- `thorough`: many more examples, for a local deep check.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("TINYLLM_HYPOTHESIS_PROFILE", "ci"))
