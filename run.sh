#!/usr/bin/env bash
# Install (first time) and open hitl-desktop on the embedded model and the default database.
# Arguments go to the app, e.g. ./run.sh --db ~/medicine.db --model ~/models/my-instruct
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
exec .venv/bin/hitl-desktop "$@"
