#!/usr/bin/env bash
# slimnn quick start.
#
#   ./quickstart.sh demo [args...]   build and run examples/compare_schemes (args are passed on),
#                                    then plot its results (build/compare_schemes.svg, .png)
#   ./quickstart.sh test             build everything, run all tests, then the tests again
#                                    under AddressSanitizer + UndefinedBehaviorSanitizer,
#                                    and the threading tests under ThreadSanitizer
#
# Missing Debian packages are installed first (with sudo when not root).
# SLIMNN_JOBS sets the build/test parallelism (default 2).
set -euo pipefail

# Debian packages the build needs; append new dependencies here.
PACKAGES="build-essential cmake pkg-config libeigen3-dev libfftw3-dev zlib1g-dev libgtest-dev libbenchmark-dev dataset-fashion-mnist nlohmann-json3-dev clang libclang-rt-dev python3-torch python3-numpy python3-matplotlib libzstd-dev libdnnl-dev"

JOBS="${SLIMNN_JOBS:-2}"
cd "$(dirname "$0")"
START=$SECONDS

usage() {
  echo "usage: $0 demo [compare_schemes args...] | test" >&2
  exit 2
}

banner() {
  local t=$((SECONDS - START))
  printf '\n==== [%dm%02ds] %s ====\n' $((t / 60)) $((t % 60)) "$*"
}

install_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "quickstart: not a Debian-based system; install the equivalents of: $PACKAGES" >&2
    return 0
  fi
  local missing=() p
  for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  banner "installing ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "quickstart: need root or sudo to install: ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

demo() {
  banner "configure build/ (Release)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
    -DSLIMNN_BUILD_EXAMPLES=ON -DSLIMNN_BUILD_TESTS=OFF -DSLIMNN_BUILD_BENCHMARKS=OFF
  banner "build compare_schemes (-j$JOBS)"
  cmake --build build -j"$JOBS" --target compare_schemes
  banner "run compare_schemes"
  build/examples/compare_schemes --out build "$@"
  banner "plot build/compare_schemes.svg, .png"
  /usr/bin/python3 tools/plot_compare_schemes.py build/compare_schemes.csv
  banner "done"
}

run_tests() {
  banner "configure build/ (Release; tests, examples, benchmarks)"
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
    -DSLIMNN_BUILD_TESTS=ON -DSLIMNN_BUILD_EXAMPLES=ON -DSLIMNN_BUILD_BENCHMARKS=ON \
    -DSLIMNN_INSTALL=ON -DSLIMNN_CONSUMER_TESTS=ON
  banner "build build/ (-j$JOBS)"
  cmake --build build -j"$JOBS"
  banner "ctest build/"
  ctest --test-dir build --output-on-failure -j"$JOBS"

  # Clang at -O0 with line tables only: sanitizer reports keep file:line, and the
  # template-heavy tests build in about a quarter of the time GCC needs at -O1 (7 against
  # 24 minutes on 2 cores), while the suite still runs in well under a minute.
  banner "configure build-asan/ (clang -O0 -g1, ASan + UBSan, tests only)"
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O0 -g1 -DNDEBUG" \
    -DSLIMNN_BUILD_TESTS=ON -DSLIMNN_BUILD_EXAMPLES=OFF -DSLIMNN_BUILD_BENCHMARKS=OFF \
    -DSLIMNN_CONSUMER_TESTS=OFF \
    "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
  banner "build build-asan/ (-j$JOBS)"
  cmake --build build-asan -j"$JOBS"
  banner "ctest build-asan/"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$JOBS"

  # ThreadSanitizer on the tests that run threads: the pool, inference on several threads
  # (also nested and from concurrent callers), concurrent forward through a network, and
  # the trainer's data-parallel steps and evaluation.
  banner "configure build-tsan/ (clang -O1 -g1, TSan, threading tests)"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG" \
    -DSLIMNN_BUILD_TESTS=ON -DSLIMNN_BUILD_EXAMPLES=OFF -DSLIMNN_BUILD_BENCHMARKS=OFF \
    -DSLIMNN_CONSUMER_TESTS=OFF "-DCMAKE_CXX_FLAGS=-fsanitize=thread -fno-omit-frame-pointer"
  banner "build build-tsan/ (-j$JOBS)"
  cmake --build build-tsan -j"$JOBS" --target thread_pool_test parallel_test network_test train_test
  banner "run the threading tests under TSan"
  export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  build-tsan/tests/thread_pool_test
  build-tsan/tests/parallel_test
  build-tsan/tests/network_test --gtest_filter='composition.concurrent_*'
  build-tsan/tests/train_test --gtest_filter='trainer.data_parallel_*:trainer.evaluate_*'
  unset TSAN_OPTIONS
  banner "all tests passed"
}

[ $# -ge 1 ] || usage
cmd="$1"
shift
case "$cmd" in
  demo)
    install_packages
    demo "$@"
    ;;
  test)
    [ $# -eq 0 ] || usage
    install_packages
    run_tests
    ;;
  *) usage ;;
esac
