"""The CPU backend asks glibc's malloc to keep freed memory (see numpy_backend.keep_freed_memory)."""

import platform
import subprocess
import sys

import pytest

from tinyllm.backend.numpy_backend import KEEPS_FREED_MEMORY

glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not glibc, reason="the malloc tuning exists only for glibc")
def test_glibc_malloc_keeps_freed_memory_by_default():
    assert KEEPS_FREED_MEMORY


def test_the_memory_policy_can_be_switched_off():
    code = "from tinyllm.backend.numpy_backend import KEEPS_FREED_MEMORY as k; print(k)"
    out = subprocess.run(
        [sys.executable, "-c", code], env={"TINYLLM_KEEP_MEMORY": "0", "PATH": ""}, capture_output=True, text=True
    )
    assert out.stdout.strip() == "False", out.stderr
