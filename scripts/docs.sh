#!/usr/bin/env bash
# Build the API reference from the docstrings with pdoc: HTML in docs/api/
# (not committed), or in the directory given as the first argument.
# The user guide is plain Markdown in docs/ and needs no build.
# H2RPC_PYTHON=/path/to/python uses that interpreter, already set up, instead
# of preparing .venv (the test of this script does so).
source "$(dirname "$0")/env.sh"
out=${1:-"$ROOT/docs/api"}
if [ -n "${H2RPC_PYTHON:-}" ]; then
    python=$H2RPC_PYTHON
else
    ensure_venv
    python="$VENV/bin/python"
fi
# The public packages; a package with __all__ shows just that, the others
# their public submodules too.
modules=(rpc rpc.core rpc.client rpc.server rpc.status rpc.protocol rpc.http2 rpc.services)
for optional in testing; do  # packages that not every version has
    if [ -e "$ROOT/rpc/$optional.py" ] || [ -d "$ROOT/rpc/$optional" ]; then
        modules+=("rpc.$optional")
    fi
done
# Stale pages of removed modules go; only ever a directory pdoc wrote before.
if [ -f "$out/search.js" ] && [ -f "$out/index.html" ]; then
    rm -rf "$out"
fi
cd "$ROOT"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pdoc \
    --docformat restructuredtext --no-show-source --footer-text "h2rpc $("$python" -c 'import rpc; print(rpc.__version__)')" \
    -o "$out" "${modules[@]}"
echo "API reference: $out/index.html"
