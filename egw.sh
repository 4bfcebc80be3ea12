#!/usr/bin/env bash
# The project's two entry points (run as root on Debian 12):
#   ./egw.sh demo   set up everything, then run the smart-home demo with the embedded
#                   default model and policy, and print where the report is
#   ./egw.sh test   set up everything, then run the whole test suite (pytest)
# Extra arguments go to `egw emulate` (demo) or pytest (test).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
cmd="${1:-}"; shift || true
case "$cmd" in
  demo)
    bash scripts/bootstrap.sh
    exec .venv/bin/egw emulate "$@"
    ;;
  test)
    # the tests also cover the --ray paths: the cluster extra (Ray) too
    EGW_EXTRAS="${EGW_EXTRAS:-train,emulate,test,cluster}" bash scripts/bootstrap.sh
    exec .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./egw.sh demo|test [ARGS...]" >&2; exit 2 ;;
esac
