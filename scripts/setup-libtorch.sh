#!/usr/bin/env bash
# Installs libtorch 2.13.0 (the one tch 0.26.0 is built against) from the pinned PyPI wheel into
# .venv-torch and links it as .libtorch, which .cargo/config.toml points LIBTORCH at. Idempotent: a second
# run does nothing. FULL=1 installs the CUDA libraries too (4.7 GB) for `--features cuda`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-torch
if [ -e .libtorch/lib/libtorch_cpu.so ]; then
  exit 0
fi
echo "setup-libtorch: installing torch==2.13.0 into $VENV (one time, ~1.25 GB)" >&2
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
if [ "${FULL:-0}" = 1 ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check torch==2.13.0
else
  # libtorch_cpu.so needs libcudart.so.13 and libcupti.so.13 from CUDA, nothing else.
  "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps torch==2.13.0 \
    nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
fi
ln -sfn "$(ls -d "$VENV"/lib/python3*/site-packages/torch)" .libtorch
test -e .libtorch/lib/libtorch_cpu.so
echo "setup-libtorch: done" >&2
