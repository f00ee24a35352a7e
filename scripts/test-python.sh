#!/usr/bin/env bash
# The Python package's tests: builds the wheel (python/, maturin, abi3) into the project's own virtual
# environment .venv-py with the pinned test dependencies (python/requirements-test.txt), then runs pytest.
# Idempotent: the venv is made once; the wheel is rebuilt by cargo's incremental build (python/target/).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-py
if [ ! -x "$VENV/bin/python" ]; then
  echo "test-python: creating $VENV with the pinned test dependencies (one time)" >&2
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt
rm -rf python/target/wheels
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -i "$VENV/bin/python" --locked
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps python/target/wheels/*.whl
# From the repository root, so `import dsrm_hrl` finds the installed wheel, not the source folder. The Ray
# executor's test runs the `dsrm` binary `cargo test` built (DSRM_BIN), and skips without one.
export DSRM_BIN="${DSRM_BIN:-$PWD/target/debug/dsrm}"
"$VENV/bin/pytest" -q -p no:cacheprovider python/tests
