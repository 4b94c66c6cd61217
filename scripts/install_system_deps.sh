#!/usr/bin/env bash
# The system packages the test suite needs beside its Python ones: Graphviz's `dot`, with which
# the graph-drawing tests render SVG and PNG, and GNU OpenMP (libgomp1), the runtime of Numba's
# OpenMP threading layer that `tune_for_training()` and `tune_for_inference()` pick. Installs
# what is missing from Debian/Ubuntu's packages (as root, or through sudo); does nothing when
# both are already there.
set -euo pipefail
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
python3 -c "import ctypes; ctypes.CDLL('libgomp.so.1')" 2>/dev/null || missing+=(libgomp1)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: ${missing[*]}; install them with your system's package manager" >&2
    exit 1
fi
sudo_if_needed=$([ "$(id -u)" -eq 0 ] && echo "" || echo "sudo")
echo "+ apt-get install ${missing[*]}"
$sudo_if_needed apt-get update -qq
$sudo_if_needed apt-get install -y -qq "${missing[@]}"
