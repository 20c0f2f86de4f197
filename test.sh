#!/usr/bin/env bash
# Install (first time) and run every check headless: lint, layering, the whole test suite
# (the slow tests that load the real embedded model included). Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --dev
export QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check hitl_desktop tests benchmarks scripts
.venv/bin/lint-imports
exec .venv/bin/python -m pytest "$@"
