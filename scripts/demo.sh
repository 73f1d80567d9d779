#!/usr/bin/env bash
# Run the demo: generate the helloworld code, start its server, call it with its client.
source "$(dirname "$0")/env.sh"
ensure_venv
exec "$VENV/bin/python" "$ROOT/examples/demo.py" "$@"
