#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
#
#   scripts/test.sh            # cargo test --workspace
#   scripts/test.sh -p accord-tests   # extra arguments go to cargo test
#
# The process-level tests (tests/) verify co-signed statements with Python's `cryptography`,
# PyNaCl and the OpenSSL command line; they fail (never skip) when those are missing, so this
# script installs them first.
set -euo pipefail
cd "$(dirname "$0")/.."

python_ok() {
    python3 - <<'PY' 2>/dev/null
import cryptography.hazmat.primitives.asymmetric.ed25519  # noqa: F401
import nacl.signing  # noqa: F401
PY
}

if ! command -v python3 >/dev/null 2>&1; then
    echo "installing python3" >&2
    apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
fi
if ! python_ok; then
    echo "installing Python packages: cryptography pynacl" >&2
    python3 -m pip install --quiet cryptography pynacl \
        || python3 -m pip install --quiet --break-system-packages cryptography pynacl
fi
python_ok || { echo "error: Python cryptography/pynacl still missing" >&2; exit 1; }

if ! command -v openssl >/dev/null 2>&1; then
    echo "installing openssl" >&2
    apt-get update -qq && apt-get install -y -qq openssl >/dev/null
fi

# The storage-failure test lowers a running node's file size limit with prlimit (util-linux).
if ! command -v prlimit >/dev/null 2>&1; then
    echo "installing util-linux (prlimit)" >&2
    apt-get update -qq && apt-get install -y -qq util-linux >/dev/null
fi

# The network-fault tests run members in network namespaces joined by veth pairs (needs root,
# iproute2's `ip`, and `ethtool` to turn checksum offload off on the veths).
for tool in ip:iproute2 ethtool:ethtool; do
    if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
        echo "installing ${tool#*:}" >&2
        apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null
    fi
done

# The service-unit test checks deploy/systemd/accord.service with systemd-analyze.
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing systemd (systemd-analyze)" >&2
    apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi

# The API contract test drives schemathesis against a live node, and the page test drives
# headless Chromium through chromedriver with selenium: both from a virtual environment in
# target/test-venv (ACCORD_TEST_VENV), with Debian's chromium and chromium-driver. The newest
# Python 3 available makes it (schemathesis's coverage phase needs 3.12+; with 3.11 the test
# runs the other phases and says so).
export ACCORD_TEST_VENV="${ACCORD_TEST_VENV:-$PWD/target/test-venv}"
venv_ok() {
    [ -x "$ACCORD_TEST_VENV/bin/schemathesis" ] && "$ACCORD_TEST_VENV/bin/python" -c 'import selenium' 2>/dev/null
}
if ! venv_ok; then
    venv_python=python3
    # pyenv's shims answer only for the selected version, so its other installs by path too.
    pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    for candidate in python3.14 python3.13 python3.12 "$pyenv_root"/versions/3.1[2-9]*/bin/python3; do
        if "$candidate" -c 'import sys; assert sys.version_info >= (3, 12)' 2>/dev/null; then
            venv_python=$candidate
            break
        fi
    done
    echo "creating $ACCORD_TEST_VENV with $venv_python: schemathesis selenium" >&2
    rm -rf "$ACCORD_TEST_VENV"
    if ! "$venv_python" -m venv "$ACCORD_TEST_VENV" 2>/dev/null; then
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        "$venv_python" -m venv "$ACCORD_TEST_VENV"
    fi
    "$ACCORD_TEST_VENV/bin/pip" install --quiet schemathesis selenium
fi
venv_ok || { echo "error: schemathesis/selenium still missing in $ACCORD_TEST_VENV" >&2; exit 1; }
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "installing chromium chromium-driver" >&2
    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
command -v chromedriver >/dev/null 2>&1 || { echo "error: chromedriver still missing" >&2; exit 1; }

# The process-level tests build the `accord` binary they start themselves (with the
# failpoints feature; tests/tests/common/mod.rs), so `scripts/test.sh -p accord-tests` works too.
cargo test --workspace "$@"
