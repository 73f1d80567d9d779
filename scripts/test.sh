#!/usr/bin/env bash
# Run the whole test suite, after setting up everything it needs.
# Extra arguments go to pytest (e.g. scripts/test.sh -k flow -x).
source "$(dirname "$0")/env.sh"
ensure_venv
ensure_nghttp2_tools
ensure_curl
ensure_grpc_js
cd "$ROOT"
exec "$VENV/bin/python" -m pytest "$@"
