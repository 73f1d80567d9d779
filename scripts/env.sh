# Sourced by the other scripts: creates/updates the project's virtual
# environment and installs the Debian tools the tests use. Safe to run again:
# each step is skipped when already done.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"

pick_python() {
    for candidate in "${PYTHON:-}" python3.11 python3.12 python3.13 python3.10 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "error: Python 3.10 or newer is needed (set PYTHON=...)" >&2
    return 1
}

# The oldest and the newest Python h2rpc supports (pyproject.toml's classifiers):
# the test command prepares a virtual environment for each when that Python is
# on the machine (on PATH as pythonX.Y, or installed by pyenv), and CI runs a
# quick part of the suite on them (QUICK_TESTS).
EXTRA_PYTHON_VERSIONS=(3.10 3.13)
QUICK_TESTS=(tests/protocol tests/http2 tests/grpc tests/test_tcp_proxy.py tests/test_docs.py)

# The interpreter of Python X.Y: pythonX.Y if it runs, else pyenv's newest X.Y.*.
find_python_version() {
    local version=$1 candidate
    if command -v "python$version" >/dev/null 2>&1 &&
        "python$version" -c "import sys; sys.exit(f'{sys.version_info[0]}.{sys.version_info[1]}' != '$version')" 2>/dev/null; then
        command -v "python$version"
        return 0
    fi
    local pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    candidate=$(find "$pyenv_root/versions" -maxdepth 1 -name "$version.*" 2>/dev/null |
        grep -E "/$version\.[0-9]+$" | sort -V | tail -n 1)
    if [ -n "$candidate" ] && [ -x "$candidate/bin/python" ]; then
        echo "$candidate/bin/python"
        return 0
    fi
    return 1
}

# make_venv DIR PYTHON: a virtual environment with h2rpc (editable) and its test,
# benchmark and docs dependencies; reinstalled only when pyproject.toml changed.
make_venv() {
    local venv=$1 python=$2
    if [ ! -x "$venv/bin/python" ]; then
        echo "== creating virtual environment in ${venv#"$ROOT"/}"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
    fi
    local stamp="$venv/.h2rpc-installed"
    local want
    want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "== installing h2rpc and its test, benchmark and docs dependencies into ${venv#"$ROOT"/}"
        "$venv/bin/python" -m pip install -q -e "$ROOT[test,bench,docs]"
        echo "$want" >"$stamp"
    fi
}

ensure_venv() {
    make_venv "$VENV" "$(pick_python)"
}

# .venv-X.Y for each of EXTRA_PYTHON_VERSIONS whose Python is on the machine
# (a warning for the others: the default .venv is all the tests need).
ensure_extra_venvs() {
    local version python
    for version in "${EXTRA_PYTHON_VERSIONS[@]}"; do
        if python=$(find_python_version "$version"); then
            make_venv "$ROOT/.venv-$version" "$python"
        else
            echo "warning: no Python $version here (pythonX.Y or pyenv); skipping .venv-$version" >&2
        fi
    done
}

ensure_nghttp2_tools() {
    if command -v nghttp >/dev/null && command -v h2load >/dev/null && command -v nghttpd >/dev/null; then
        return 0
    fi
    echo "== installing nghttp2-client and nghttp2-server (Debian packages)"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "error: nghttp/h2load/nghttpd are missing and this user cannot run apt-get;" >&2
            echo "       install the Debian packages nghttp2-client and nghttp2-server." >&2
            return 1
        fi
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nghttp2-client nghttp2-server >/dev/null
}

# apt-get install as root, or through passwordless sudo; fails with a message otherwise.
apt_install() {
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "error: this user cannot run apt-get; install the Debian packages: $*" >&2
            return 1
        fi
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_nginx() {
    # tests/interop/test_nginx.py: nginx as a gRPC proxy (grpc_pass) in front of h2rpc.
    command -v nginx >/dev/null && return 0
    [ -x /usr/sbin/nginx ] && return 0
    echo "== installing nginx (Debian package)"
    apt_install nginx
}

ensure_curl() {
    # tests/interop/test_curl.py: curl built with nghttp2 (Debian's is).
    command -v curl >/dev/null && return 0
    echo "== installing curl (Debian package)"
    apt_install curl
}

ensure_grpc_js() {
    # tests/interop/test_grpc_js.py and tests/cli/test_grpc_js.py: Node with the
    # locked @grpc/grpc-js, @grpc/proto-loader, grpc-health-check and
    # @grpc/reflection in tests/interop/grpc_js (reinstalled when its
    # package.json or package-lock.json changed). On failure (no network) the
    # tests skip, saying why, so this step only warns.
    local project="$ROOT/tests/interop/grpc_js"
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "== installing nodejs and npm (Debian packages)"
        apt_install nodejs npm || {
            echo "warning: no Node; the grpc-js interop tests will skip" >&2
            return 0
        }
    fi
    local stamp="$project/node_modules/.h2rpc-installed"
    local want
    want=$(cat "$project/package.json" "$project/package-lock.json" | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    echo "== installing grpc-js for the interop tests (npm ci in tests/interop/grpc_js)"
    if (cd "$project" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null); then
        echo "$want" >"$stamp"
    else
        echo "warning: npm ci failed; the grpc-js interop tests will skip" >&2
    fi
}
