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

# The CPU's int8 kernel (core/backends/int8_simd.c), built once into the model cache where the
# CPU has AVX-512 VNNI and there is a C compiler; else the model uses torch's kernels. (The
# first model load would build it too; here it costs the first start nothing.)
.venv/bin/python -c "import torch; from hitl_desktop.core.backends import int8_simd; int8_simd.available()" \
  >/dev/null 2>&1 || true
