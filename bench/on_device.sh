#!/usr/bin/env bash
# The GPU check: the tests on a machine with an NVIDIA GPU, then the two benchmarks whose figures
# bench/README.md records. Needs TensorFlow with CUDA and requirements-test.txt installed; run from the
# project's root:
#
#   bash bench/on_device.sh tests    # the GPU-only tests and the suite's files that run on the GPU
#   bash bench/on_device.sh bench    # bench/gpu.py (WRN-28-10, batch 128, L = 5) and bench/langevin_cost.py
#   bash bench/on_device.sh          # both
#
# Each part stays within its time limit (TESTS_S, BENCH_S seconds; a benchmark cut off by its limit
# prints the rounds it completed), so that a check on a machine lent for minutes brings back what it
# finished. Every output goes to a file in $OUT (default gpu-check/) as it is written, and to stdout.
# BENCH_ARGS and LANGEVIN_ARGS are added to the two benchmarks' flags (later flags win: BENCH_ARGS="--L 5 20";
# a dry run on a CPU: BENCH_ARGS=--smoke LANGEVIN_ARGS="--depth 10 --width 1"). The exit status is 1 when a
# test failed or the tests were cut off by their limit, or a benchmark ended in an error (not when its limit
# cut it off), else 0.
set -uo pipefail

part=${1:-all}
case $part in
  tests|bench|all) ;;
  *) echo "usage: bash bench/on_device.sh [tests|bench|all]" >&2; exit 2 ;;
esac
out=${OUT:-gpu-check}
py=${PYTHON:-python3}
workers=${WORKERS:-8}
status=0
mkdir -p "$out"
# The test workers and the processes they start share the GPU: none may take all its memory up front.
export TF_FORCE_GPU_ALLOW_GROWTH=true

machine() {
  date -u '+%Y-%m-%d %H:%M UTC'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$py" -c "import tensorflow as tf; print('TensorFlow', tf.__version__, tf.config.list_physical_devices('GPU'))"
  "$py" -c "import importlib.util as u; print('not installed:', [m for m in ('numpy', 'tqdm', 'tensorboard',
      'matplotlib', 'pytest', 'xdist') if u.find_spec(m) is None] or 'none of the requirements')"
}

# First the files whose code runs on the GPU: the placement tests, the optimizers and models against
# their references, train.py end to end at every precision and with towers and replicas sharing the GPU,
# an exact resume. TF32 is off for them (NVIDIA_TF32_OVERRIDE=0): the reference tests compare with
# float64 NumPy to float32 rounding, which a TF32 matmul (a 10-bit mantissa) is not. Then, with what
# time is left, the rest of the suite, which a GPU should not change.
gpu_files=(tests/test_gpu.py tests/test_entropy_sgd.py tests/test_entropy_sgd_scaling.py tests/test_parle.py
           tests/test_models.py tests/test_models_precision.py tests/test_train_precision.py
           tests/test_train_e2e.py tests/test_train_parallel.py tests/test_train_resume_exact.py)
tests() {
  local limit=${TESTS_S:-300} start=$SECONDS rest=()
  NVIDIA_TF32_OVERRIDE=0 timeout -k 20 -s INT "$limit" "$py" -m pytest -q -n "$workers" -p no:cacheprovider \
    --durations=10 "${gpu_files[@]}" 2>&1 | tee "$out/tests-gpu.txt" || status=1
  for f in tests/test_*.py; do [[ " ${gpu_files[*]} " == *" $f "* ]] || rest+=("$f"); done
  local left=$((limit - (SECONDS - start)))
  if ((left > 30)); then
    NVIDIA_TF32_OVERRIDE=0 timeout -k 20 -s INT "$left" "$py" -m pytest -q -n "$workers" -p no:cacheprovider \
      "${rest[@]}" 2>&1 | tee "$out/tests-rest.txt" || status=1
  fi
}

# TF32 on, as a user's run has it. Each benchmark has its own limit: bench/gpu.py builds a graph per
# variant (XLA compiles the bf16 ones), so fp32 and bf16 + XLA go in two runs, each with its own table.
bench() {
  local limit=${BENCH_S:-450}
  run_bench $((limit * 7 / 20)) gpu-fp32 bench.gpu --L 5 --modes fp32 --rounds 3 ${BENCH_ARGS:-}
  run_bench $((limit * 9 / 20)) gpu-bf16-xla bench.gpu --L 5 --modes bf16+xla --rounds 3 ${BENCH_ARGS:-}
  run_bench $((limit * 4 / 20)) langevin-cost bench.langevin_cost --rounds 5 ${LANGEVIN_ARGS:-}
}

# run_bench SECONDS NAME MODULE FLAGS...: the module, stopped by SIGTERM after SECONDS (it then prints
# what it measured and exits 143, which is no failure here; killed 30 s later if a turn or an XLA
# compilation under way holds it longer), its output in $out/NAME.txt.
run_bench() {
  local limit=$1 name=$2
  shift 2
  timeout -k 30 -s TERM "$limit" "$py" -m "$@" 2>&1 | tee "$out/$name.txt"
  local code=${PIPESTATUS[0]}
  ((code == 0 || code == 124 || code == 143)) || status=1
}

machine 2>&1 | tee "$out/machine.txt"
case $part in
  tests) tests ;;
  bench) bench ;;
  all) tests; bench ;;
esac
exit $status
