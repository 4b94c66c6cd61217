#!/usr/bin/env bash
# One short GPU check: install the [gpu] extra, run the CUDA test subset, then the GPU rows of the
# benchmarks, and print one table. Fits in about five minutes on one GPU.
#
#     bash benchmarks/gpu_check.sh            # from the repository root
#
# Every step's output goes to $LOG_DIR (default: a temporary folder); the table at the end gives
# each step's status, its time and the figures it produced. Without a GPU the benchmarks print
# only their CPU rows and the CUDA tests skip; NUMBA_ENABLE_CUDASIM=1 runs the kernel tests on
# the numba.cuda simulator instead (slow, for checking this script without a GPU).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
LOG_DIR="${LOG_DIR:-$(mktemp -d)}"
PYTHON="${PYTHON:-python}"
declare -a ROWS

step() {  # step NAME TIMEOUT_S COMMAND...: run it with a time limit, keep its log, add a table row
    local name="$1" limit="$2"
    shift 2
    local log="$LOG_DIR/$name.log" start end status
    start=$(date +%s)
    if timeout "$limit" "$@" >"$log" 2>&1; then status=ok; else status="FAILED($?)"; fi
    end=$(date +%s)
    ROWS+=("$(printf '%-22s %-11s %5ss  %s' "$name" "$status" "$((end - start))" "$(summary "$name" "$log")")")
}

summary() {  # the figures worth a glance from a step's log
    case "$1" in
        install) tail -n 1 "$2" | cut -c1-90 ;;
        gpu) head -n 1 "$2" ;;
        cuda-tests) grep -E "passed|failed|skipped" "$2" | tail -n 1 ;;
        attention) grep -E "^ *(256|1024) " "$2" | tr -s ' ' | paste -sd';' | cut -c1-200 ;;  # last 2 columns: cuda fwd, f+b ms
        matmul) grep -E "square 1024" "$2" | head -n 1 | tr -s " " | cut -c1-160 ;;
        train) grep -E "cuda" "$2" | awk -F'  +' '{printf "%s %s ms; ", $1, $2}' | tr -s ' ' ;;
    esac
}

step install 240 "$PYTHON" -m pip install --quiet ".[gpu]"
step gpu 30 "$PYTHON" -c "import tinyllm as tl, cupy; print('cuda available:', tl.cuda_is_available(), cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())"
step cuda-tests 120 "$PYTHON" -m pytest -q -x tests/test_kernels_cuda.py
step attention 90 "$PYTHON" benchmarks/bench_attention.py --rounds 1 --repeat 3 --lengths 256 1024
step matmul 90 "$PYTHON" benchmarks/bench_matmul.py --rounds 1 --sizes 256 1024
step train 150 "$PYTHON" benchmarks/bench_train.py --rounds 1 --iters 5 --gen-repeat 1

echo
echo "GPU check (logs in $LOG_DIR)"
printf '%-22s %-11s %6s  %s\n' step status time "figures"
for row in "${ROWS[@]}"; do echo "$row"; done
