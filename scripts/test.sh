#!/usr/bin/env bash
# Run the whole test suite, after setting up everything it needs.
# Extra arguments go to pytest (e.g. scripts/test.sh -k flow -x).
# With --python X.Y first, the tests run in .venv-X.Y instead of .venv
# (scripts/env.sh prepares one for the oldest and the newest supported Python).
source "$(dirname "$0")/env.sh"
ensure_venv
ensure_extra_venvs
ensure_nghttp2_tools
ensure_curl
ensure_grpc_js
cd "$ROOT"
python="$VENV/bin/python"
if [ "${1:-}" = --python ]; then
    python="$ROOT/.venv-${2:?--python needs a version, e.g. --python 3.10}/bin/python"
    [ -x "$python" ] || { echo "error: no .venv-$2 (Python $2 not found)" >&2; exit 1; }
    shift 2
fi
exec "$python" -m pytest "$@"
