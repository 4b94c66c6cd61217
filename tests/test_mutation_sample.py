"""The CI sample of mutation testing: a fixed, seeded handful of mutants of autograd, ops,
optim, io and tokenizers, each run against its module's main test file; the suite must kill
at least the threshold share of them (scripts/mutation_check.py --ci)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation_check.py"


@pytest.mark.slow
def test_the_suite_kills_the_ci_sample_of_mutants():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--ci", "--root", str(ROOT)], capture_output=True, text=True, timeout=900
    )
    summary = re.search(r"CI: (\d+)/(\d+) killed = \d+% \(threshold (\d+)%\)", result.stdout)
    assert summary, f"no CI summary in the output:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    killed, total, threshold = map(int, summary.groups())
    assert total >= 10
    assert result.returncode == 0 and killed >= threshold / 100 * total, result.stdout[-3000:]
