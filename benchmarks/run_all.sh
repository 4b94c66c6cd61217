#!/usr/bin/env bash
# Every CPU benchmark, one after another (never two at once: on a small machine they would slow
# each other), each printing its table to benchmarks/results/<name>.txt and writing its PNG from
# the same run. About 30 minutes on 2 cores; --with-convergence adds the 2000-iteration training
# of tinyllm and its PyTorch twin (about 10 more).
#
#     bash benchmarks/run_all.sh [--threads N] [--with-convergence]
set -eu
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
THREADS=2
CONVERGENCE=no
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) THREADS="$2"; shift 2 ;;
        --with-convergence) CONVERGENCE=yes; shift ;;
        *) echo "usage: bash benchmarks/run_all.sh [--threads N] [--with-convergence]" >&2; exit 2 ;;
    esac
done
RESULTS=benchmarks/results
mkdir -p "$RESULTS"
FAILED=()

run() {  # run NAME COMMAND...: the command's output goes to the terminal and to $RESULTS/NAME.txt
    local name="$1"
    shift
    echo "== $name: $*"
    local start=$SECONDS
    "$@" 2>&1 | tee "$RESULTS/$name.txt"
    local status=${PIPESTATUS[0]}
    echo "== $name took $((SECONDS - start)) s, exit status $status"
    [ "$status" -eq 0 ] || FAILED+=("$name")
}

run overhead python benchmarks/bench_overhead.py
run matmul python benchmarks/bench_matmul.py --threads "$THREADS" --rounds 3
run attention python benchmarks/bench_attention.py --threads "$THREADS" --rounds 3
run train python benchmarks/bench_train.py --threads "$THREADS" --rounds 3 --iters 10 --profile
run bert python benchmarks/bench_bert.py --threads "$THREADS" --rounds 3
run generate python benchmarks/bench_generate.py --threads "$THREADS" --rounds 2  # 4 engines, ~40 s a process
if [ "$CONVERGENCE" = yes ]; then
    run convergence python benchmarks/convergence.py --threads "$THREADS"
fi
[ ${#FAILED[@]} -eq 0 ] || { echo "failed: ${FAILED[*]}" >&2; exit 1; }
