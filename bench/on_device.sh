#!/usr/bin/env bash
# The GPU check: the tests on a machine with an NVIDIA GPU, then the two benchmarks whose figures
# bench/README.md records. Needs TensorFlow with CUDA and requirements-test.txt installed; run from the
# project's root:
#
#   bash bench/on_device.sh tests    # the GPU-only tests and the suite's files whose code runs on the GPU
#   bash bench/on_device.sh bench    # bench/gpu.py (WRN-28-10, batch 128, L = 5) and bench/langevin_cost.py
#   bash bench/on_device.sh          # both (longer than one 10-minute call on a lent machine: make two)
#
# Each part keeps to its time limit (TESTS_S, default 240 s; BENCH_S, 360 s; a benchmark cut off prints
# the rounds it completed, and is killed 30 s later if it holds on), so that a check on a machine lent for
# minutes brings back what it finished. Every output goes to a file in $OUT (default gpu-check/) as it is
# written, and to stdout. BENCH_ARGS and LANGEVIN_ARGS are added to the two benchmarks' flags (later flags
# win: BENCH_ARGS="--L 5 20"; a dry run on a CPU: BENCH_ARGS=--smoke LANGEVIN_ARGS="--depth 10 --width 1").
# The Python is $PYTHON, else the project's .venv/bin/python where there is one, else python3.
# Exit status: 2 when the tests are asked for and TensorFlow sees no GPU (they would only skip; the
# benchmarks run anywhere); 1 when TensorFlow does not load, a test failed, the tests were cut off by their
# limit, or a benchmark ended in an error (not when its limit cut it off); else 0.
set -uo pipefail

part=${1:-all}
case $part in
  tests|bench|all) ;;
  *) echo "usage: bash bench/on_device.sh [tests|bench|all]" >&2; exit 2 ;;
esac
out=${OUT:-gpu-check}
if [[ -n ${PYTHON:-} ]]; then py=$PYTHON; elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
workers=${WORKERS:-8}
status=0
mkdir -p "$out"
# Output as it is made: a part killed at its limit keeps what it printed.
export PYTHONUNBUFFERED=1
# A GPU newer than the wheel's machine code has its kernels compiled from PTX on first use: the cache keeps
# them for every later process (the default 256 MiB is too small for TensorFlow's).
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967296}

# Prints the machine; returns 0 when TensorFlow sees a GPU, 2 when it runs and sees none, else (an import
# error) 1.
machine() {
  date -u '+%Y-%m-%d %H:%M UTC'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import importlib.util as u; print('$py: not installed:', [m for m in ('tensorflow', 'numpy', 'tqdm',
      'tensorboard', 'matplotlib', 'pytest', 'xdist') if u.find_spec(m) is None] or 'none of the requirements')"
  "$py" -c "import sys, tensorflow as tf; gpus = tf.config.list_physical_devices('GPU')
print('TensorFlow', tf.__version__, gpus); sys.exit(0 if gpus else 2)"
}

# The placement tests, then the files whose code runs on the GPU: the optimizers and models against their
# references, train.py end to end at every precision and with towers and replicas sharing the GPU.
placement_tests=tests/test_gpu.py
gpu_files=(tests/test_entropy_sgd.py tests/test_entropy_sgd_scaling.py tests/test_parle.py tests/test_models.py
           tests/test_models_precision.py tests/test_train_precision.py tests/test_train_e2e.py
           tests/test_train_parallel.py tests/test_train_resume_exact.py)
tests() {
  local deadline=$((SECONDS + ${TESTS_S:-240}))
  # 1. The placement tests, in one process: the key result first, and the kernels compiled once for all.
  run_pytest $((deadline - SECONDS)) tests-placement -p no:xdist "$placement_tests" || status=1
  # 2. The other files, bit-for-bit comparisons aside (a GPU does not promise them: docs/limits.md).
  run_pytest $((deadline - SECONDS)) tests-gpu -n "$workers" --durations=10 -m "not bitexact" \
    "${gpu_files[@]}" || status=1
  # 3. Those comparisons, as a measurement of this GPU: their failures leave the status alone.
  if ((deadline - SECONDS > 30)); then
    run_pytest $((deadline - SECONDS)) tests-bitexact -n "$workers" -m bitexact "${gpu_files[@]}"
  fi
}

# run_pytest SECONDS NAME FLAGS...: pytest stopped like Ctrl-C after SECONDS (it then prints its summary),
# its output in $out/NAME.txt; returns pytest's status (124 when its limit cut it off). The processes it
# starts share the GPU, so none may take all its memory up front. TF32 is off for the tests
# (NVIDIA_TF32_OVERRIDE=0, which cuBLAS and cuDNN obey; XLA's own kernels do not, and compile element-wise
# work only there): the reference tests compare with float64 NumPy to float32 rounding, which a TF32 matmul
# (a 10-bit mantissa) is not.
run_pytest() {
  local limit=$1 name=$2
  shift 2
  ((limit > 0)) || { echo "$name: no time left" | tee "$out/$name.txt"; return 124; }
  TF_FORCE_GPU_ALLOW_GROWTH=true NVIDIA_TF32_OVERRIDE=0 timeout -k 20 -s INT "$limit" \
    "$py" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$out/$name.txt"
  return "${PIPESTATUS[0]}"
}

# TF32 on, as a user's run has it. bench/gpu.py builds a graph per variant (XLA compiles the bf16 ones), so
# fp32 and bf16 + XLA go in two runs, each with its own limit and table.
bench() {
  local limit=${BENCH_S:-360}
  run_bench $((limit * 7 / 20)) gpu-fp32 bench.gpu --L 5 --modes fp32 --rounds 3 ${BENCH_ARGS:-}
  run_bench $((limit * 9 / 20)) gpu-bf16-xla bench.gpu --L 5 --modes bf16+xla --rounds 3 ${BENCH_ARGS:-}
  run_bench $((limit * 4 / 20)) langevin-cost bench.langevin_cost --rounds 5 ${LANGEVIN_ARGS:-}
}

# run_bench SECONDS NAME MODULE FLAGS...: the module, sent SIGTERM after SECONDS (it then prints what it
# measured) and killed 30 s later if a turn or an XLA compilation under way holds it; its output in
# $out/NAME.txt. Cut off (124, 137, or its own 143) is no failure here.
run_bench() {
  local limit=$1 name=$2
  shift 2
  timeout -k 30 -s TERM "$limit" "$py" -m "$@" 2>&1 | tee "$out/$name.txt"
  local code=${PIPESTATUS[0]}
  ((code == 0 || code == 124 || code == 137 || code == 143)) || status=1
}

machine 2>&1 | tee "$out/machine.txt"
found=${PIPESTATUS[0]}
if ((found == 2)) && [[ $part != bench ]]; then
  echo "bench/on_device.sh: TensorFlow sees no GPU here (see $out/machine.txt): the GPU tests would only skip" >&2
  exit 2
elif ((found != 0 && found != 2)); then
  echo "bench/on_device.sh: TensorFlow does not load with $py (see $out/machine.txt); set PYTHON" >&2
  exit 1
fi
case $part in
  tests) tests ;;
  bench) bench ;;
  all) tests; bench ;;
esac
exit $status
