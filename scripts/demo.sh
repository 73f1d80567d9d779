#!/usr/bin/env bash
# Run the demo: an example server and client talking over loopback.
source "$(dirname "$0")/env.sh"
ensure_venv
exec "$VENV/bin/python" "$ROOT/examples/core.py" "$@"
