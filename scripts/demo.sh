#!/usr/bin/env bash
# The main job on a fresh machine: set up what is missing, then `npm run demo` (arguments pass through:
# --auto-approve, --down).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npm run demo --silent -- "$@"
