#!/usr/bin/env bash
# Installs what hitl-desktop needs into ./.venv (and Qt's system libraries on Debian/Ubuntu).
#   scripts/setup.sh          the app
#   scripts/setup.sh --dev    the app and the test tools
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1

# Qt's offscreen/xcb platform libraries, Xvfb for a real window in tests, fonts.
APT_PACKAGES=(libegl1 libgl1 libopengl0 libglib2.0-0 libfontconfig1 libfreetype6 libdbus-1-3
  libxkbcommon0 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-xfixes0 libx11-xcb1
  fonts-dejavu-core)
[ "$DEV" = 1 ] && APT_PACKAGES+=(xvfb xdotool)
if command -v dpkg >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" != 0 ] && SUDO="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first and pinned: a CPU build (the range in pyproject.toml admits it), so that no
# dependency pulls a multi-GB CUDA build. Override with TORCH_SPEC="torch==X" if you must.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing $TORCH_SPEC"
  "${PIP[@]}" install "$TORCH_SPEC"
fi

EXTRA=""
[ "$DEV" = 1 ] && EXTRA="[dev]"
stamp=".venv/.hitl-installed$EXTRA"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing hitl-desktop$EXTRA and its dependencies"
  "${PIP[@]}" install -e ".$EXTRA"
  touch "$stamp"
fi

# The test tools only: llama-cpp-python's server, which the served-model tests start
# (tests/core/test_served_llamacpp.py: a real server that cuts concurrent streams). PyPI has it
# as source only: built here with cmake (~3 min on 2 cores, its multimodal library off), for
# the instruction sets this CPU lists (GGML_NATIVE=ON gave "Illegal instruction" on a virtual
# machine; AMX is left off: one that listed it trapped its first tile instruction). CMAKE_ARGS
# set by the caller is used as it is.
LLAMA_CPP_SPEC="${LLAMA_CPP_SPEC:-llama-cpp-python[server]==0.3.36}"
if [ "$DEV" = 1 ] && ! .venv/bin/python -c "import llama_cpp.server" >/dev/null 2>&1; then
  if [ -z "${CMAKE_ARGS:-}" ]; then
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_CURL=OFF"
    flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
    for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C avx512f:AVX512 avx512_vnni:AVX512_VNNI \
                avx512_bf16:AVX512_BF16 avx512vbmi:AVX512_VBMI; do
      case "$flags" in *" ${pair%%:*} "*) CMAKE_ARGS+=" -DGGML_${pair#*:}=ON" ;; esac
    done
  fi
  echo "setup: building $LLAMA_CPP_SPEC (for the served-model tests; a few minutes, once)"
  CMAKE_ARGS="$CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}" \
    "${PIP[@]}" install "$LLAMA_CPP_SPEC"
fi

# The CPU's int8 kernel (core/backends/int8_simd.c), built once into the model cache where the
# CPU has AVX-512 VNNI and there is a C compiler; else the model uses torch's kernels. (The
# first model load would build it too; here it costs the first start nothing.)
.venv/bin/python -c "import torch; from hitl_desktop.core.backends import int8_simd; int8_simd.available()" \
  >/dev/null 2>&1 || true
