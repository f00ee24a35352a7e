#!/usr/bin/env bash
# Where a DSRM row's training time goes: short `dsrm train` runs on Coat with the paper study's settings (preset
# dsrm-hrl-paper, the MF world model, 8 paced updates per 1,000 steps on minibatches of 256, the default DSRM
# stage), printing each epoch's collection, update and evaluation seconds from timing.jsonl.
#
#   DSRM=target/release/dsrm bash scripts/profile-purification.sh [COAT_DIR]   # default ../shared/data/coat
#
# Rows: HRL goal (c) without a DSRM stage, with the stage at T = 10 (the study's DSRM-HRL) and at T = 500 (the
# diffusion-steps family's slowest), DNaIR without and with the stage. Run it with two binaries to compare them
# (docs/benchmarks.md §2). One libtorch thread, one evaluation thread.
set -euo pipefail
cd "$(dirname "$0")/.."
DSRM=${DSRM:-target/release/dsrm}
DATA=$(realpath "${1:-../shared/data/coat}")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dsrm-profile.XXXX")
trap 'rm -rf "$WORK"' EXIT
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1

common() { # $1 = epochs, $2 = steps per epoch
  cat <<TOML
[data]
dataset = "coat"
dir = "$DATA"
[env]
preset = "dsrm-hrl-paper"
[eval]
episodes = 100
force_length = 10
selections = ["sampled"]
[world_model]
reward = "mf"
[train]
epochs = $1
steps_per_epoch = $2
parallel_envs = 100
threads = 1
torch_threads = 1
seed = 1
TOML
}
hrl() {
  cat <<TOML
[train.algorithm]
kind = "hrl"
goal = "paper"
fairness = "window-gini"
lambda_f = 1.0
updates_per_1k_steps = 8.0
batch_size = 256
[train.tracker]
kind = "avg"
window = 3
TOML
}
dnair() {
  cat <<TOML
[train.algorithm]
kind = "dnair"
updates_per_1k_steps = 8.0
batch_size = 256
TOML
}
stage() { # $1 = diffusion steps T
  cat <<TOML
[train.dsrm]
max_states = 50000
[train.dsrm.denoiser]
kind = "ddpm"
[train.dsrm.denoiser.schedule]
steps = $1
[train.dsrm.denoiser.train]
max_epochs = 10
TOML
}

run() { # $1 = label, then the config on stdin
  cat >"$WORK/$1.toml"
  "$DSRM" train --config "$WORK/$1.toml" --out "$WORK/$1" >"$WORK/$1.log" 2>&1 || { cat "$WORK/$1.log"; exit 1; }
  python3 - "$1" "$WORK/$1/timing.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[2])]
for r in rows:
    print(f"{sys.argv[1]:<16} epoch {r['epoch']}  steps {r['env_steps']:>6}  updates {r['grad_updates']:>4}  "
          f"collect {r['collect_s']:7.2f} s  update {r['update_s']:7.2f} s  eval {r['eval_s']:7.2f} s")
PY
}

echo "binary: $DSRM ($("$DSRM" --version)), data: $DATA"
{ common 1 3000; hrl; } | run hrl
{ common 1 3000; hrl; stage 10; } | run dsrm-hrl-T10
{ common 1 3000; hrl; stage 500; } | run dsrm-hrl-T500
{ common 2 20000; dnair; } | run dnair
{ common 2 20000; dnair; stage 10; } | run dsrm-dnair
