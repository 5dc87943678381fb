#!/usr/bin/env bash
# recfresh quick start, for a fresh Debian 12 machine as root.
#
#   bash ops/quickstart.sh demo   install, build, run the service on the
#                                 embedded broker and show a ban removing an
#                                 item from a served list
#   bash ops/quickstart.sh test   install, build with -Werror and
#                                 AddressSanitizer/UBSan, run every test
#
# Environment: BUILD_DIR (default build / build-test), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake pkg-config git
          librdkafka-dev librocksdb-dev libjansson-dev libyajl-dev libssl-dev
          libmicrohttpd-dev libsystemd-dev libcmocka-dev libzstd-dev libcurl4-openssl-dev
          kcat curl zstd python3 python3-jsonschema clang-format
          clang libclang-rt-14-dev)

install_deps() {
        local missing=()
        for p in "${PACKAGES[@]}"; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
                        grep -q "install ok installed" || missing+=("$p")
        done
        [ ${#missing[@]} -eq 0 ] && return 0
        echo "==> installing: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
                echo "quickstart: need root to install packages" >&2
                exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

jobs=${JOBS:-$(nproc)}

case "${1:-}" in
demo)
        install_deps
        dir=${BUILD_DIR:-build}
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
        cmake --build "$dir" -j "$jobs" --target recfresh
        exec bash ops/demo.sh "$dir/recfresh"
        ;;
test)
        install_deps
        dir=${BUILD_DIR:-build-test}
        echo "==> format check"
        git ls-files '*.c' '*.h' | xargs clang-format --dry-run --Werror
        echo "==> build (-Werror, address+undefined sanitizers)"
        cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DRF_WERROR=ON \
                -DRF_SANITIZE=address,undefined >/dev/null
        cmake --build "$dir" -j "$jobs"
        echo "==> tests"
        cd "$dir"
        ctest --output-on-failure -j "$jobs" --timeout 600
        cd - >/dev/null
        echo "==> fuzz (libFuzzer, clang, ${FUZZ_SECONDS:-20}s per target)"
        fdir=${dir}-fuzz
        CC=clang cmake -S . -B "$fdir" -DCMAKE_BUILD_TYPE=Debug -DRF_FUZZ=ON \
                -DRF_SANITIZE=address,undefined \
                -DRF_FUZZ_SECONDS="${FUZZ_SECONDS:-20}" >/dev/null
        cmake --build "$fdir" -j "$jobs"
        cd "$fdir"
        ctest --output-on-failure -j "$jobs" -L fuzz
        ;;
*)
        echo "usage: bash ops/quickstart.sh demo|test" >&2
        exit 2
        ;;
esac
