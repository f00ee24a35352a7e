#!/usr/bin/env bash
# The Python examples' environment (not part of the test line): .venv-examples with the pinned PyTorch (the
# project's libtorch version, 2.13.0, as the full PyPI wheel: ≈ 4.7 GB with its CUDA libraries), Stable-Baselines3,
# sb3-contrib and the dsrm_hrl wheel. Then:
#   .venv-examples/bin/python python/examples/sb3_maskable_ppo.py
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-examples
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check -r python/requirements-examples.txt maturin==1.16.0
rm -rf python/target/wheels
"$VENV/bin/maturin" build --release --quiet -m python/Cargo.toml -i "$VENV/bin/python" --locked
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps python/target/wheels/*.whl
echo "setup-examples: done; run $VENV/bin/python python/examples/sb3_maskable_ppo.py" >&2
