#!/usr/bin/env bash
# Byte-identity check for refactors: runs a fixed set of small commands on a tiny synthetic KuaiRec with one
# thread and compares the sha256 of their result files with the expected ones in scripts/behaviour-hashes/.
#
#   bash scripts/behaviour-hashes.sh            # check (exit 1 and a diff on any change)
#   bash scripts/behaviour-hashes.sh --record   # rewrite the expected hashes (only when a change of results is intended,
#                                               # or, with a build already checked elsewhere, for a new kind of CPU)
#
# Two references. libtorch (and its BLAS) choose their kernels by the CPU's instruction set, which moves the low
# bits of losses and weights: the training logs, the stage's tensors and the fidelity record differ between, say,
# an AVX2 and an AVX-512 machine, while every metrics.json, the episodes and the fidelity table do not.
# `portable.txt` holds those CPU-independent files and is checked everywhere; `cpu-<signature>.txt` holds all of
# them for one kind of CPU (model name and vector extensions, hashed) and is checked where it exists. On a CPU
# without one the check says so and passes on the portable files alone.
#
# Covered: `dsrm eval` (metrics.json, episodes.jsonl), short `dsrm train` runs of every learner (A2C, PPO, DQN,
# SAC, HRL, TD3, DNaIR, SAC4IR, MoFIR and the offline BCQ, CQL, CRR, SQN)
# (metrics.json, log.jsonl), a DSRM stage's dsrm.bin (`dsrm dsrm train`) and a small `dsrm dsrm fidelity`
# (fidelity.json, fidelity.csv). What is not a result is removed before hashing: wall-clock fields (keys ending
# in `_s`, `wall`/`elapsed` keys) and the provenance's `created_at`, `command` (which names the binary) and
# `code_version` (the identity of the code, which a refactor changes by definition), in
# JSON files and in the metadata of a checkpoint (`dsrm.bin`: its tensors are hashed as they are). The commands
# run in a fixed folder, $TMPDIR/dsrm-behaviour-hashes, because configs record their paths. Set DSRM=<binary>
# to check a prebuilt binary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REF="$ROOT/scripts/behaviour-hashes"
CPU=$(python3 - <<'PY'
import hashlib, re
try:
    info = open("/proc/cpuinfo").read()
except OSError:
    print("unknown"); raise SystemExit
model = re.search(r"^model name\s*:\s*(.*)$", info, re.M)
flags = re.search(r"^flags\s*:\s*(.*)$", info, re.M)
vector = sorted(f for f in (flags.group(1).split() if flags else []) if re.match(r"(avx|fma|sse4|amx)", f))
key = (model.group(1).strip() if model else "") + "|" + " ".join(vector)
print(hashlib.sha256(key.encode()).hexdigest()[:12])
PY
)
FULL="$REF/cpu-$CPU.txt"
PORTABLE="$REF/portable.txt"
# The files whose bytes do not depend on the CPU's instruction set.
portable() { grep -E '  (eval/metrics\.json|eval/episodes\.jsonl|train-[a-z0-9]+/metrics\.json|fidelity/fidelity\.csv)$' "$1"; }
if [ -z "${DSRM:-}" ]; then
  bash scripts/setup-libtorch.sh
  cargo build --release --locked -q
  DSRM="$ROOT/target/release/dsrm"
fi
export RAYON_NUM_THREADS=1 OMP_NUM_THREADS=1
WORK="${TMPDIR:-/tmp}/dsrm-behaviour-hashes"
# One run at a time: the folder is fixed, so a second run would delete the first one's files under it.
exec 9>"$WORK.lock"
flock 9
rm -rf "$WORK"
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
run() { "$DSRM" "$@" >"$WORK/last.log" 2>&1 || { cat "$WORK/last.log"; echo "behaviour-hashes: failed: dsrm $*" >&2; exit 2; }; }

run data synth --size tiny --seed 3 --out data
run eval --data data --dataset kuairec --preset dorl-paper --policy random --episodes 20 --seed 1 --out eval

train_cfg() { # $1 = algorithm table body, $2 = extra [train] tables
  cat <<TOML
[data]
dataset = "kuairec"
dir = "$WORK/data"
[env]
preset = "dorl-paper"
[eval]
episodes = 5
[world_model]
reward = "mf"
[train]
epochs = 2
steps_per_epoch = 300
parallel_envs = 10
threads = 1
torch_threads = 1
seed = 1
[train.algorithm]
$1
$2
TOML
}
train_cfg 'kind = "a2c"
batch_size = 64' '' >a2c.toml
train_cfg 'kind = "ppo"
batch_size = 64' '' >ppo.toml
train_cfg 'kind = "dqn"
batch_size = 32
buffer_size = 2000' '' >dqn.toml
train_cfg 'kind = "sac"
batch_size = 32
buffer_size = 2000' '' >sac.toml
train_cfg 'kind = "hrl"
batch_size = 64' '' >hrl.toml
for a in td3 dnair sac4ir; do
  train_cfg "kind = \"$a\"
batch_size = 32
buffer_size = 2000" '' >"$a.toml"
done
train_cfg 'kind = "mofir"
batch_size = 64' '' >mofir.toml
for a in bcq cql crr sqn; do
  train_cfg "kind = \"$a\"
batch_size = 32
grad_steps = 5" '' >"$a.toml"
done
train_cfg 'kind = "hrl"
batch_size = 64' '[train.dsrm]
max_states = 2000
[train.dsrm.denoiser]
kind = "ddpm"
[train.dsrm.denoiser.schedule]
steps = 5
[train.dsrm.denoiser.train]
max_epochs = 2' >stage.toml
for a in a2c ppo dqn sac hrl td3 dnair sac4ir mofir bcq cql crr sqn; do run train --config "$a.toml" --out "train-$a"; done
run dsrm train --config stage.toml --out stage
cat >fidelity.toml <<TOML
noise_levels = [1.0]
synth_seed = 2
[synth]
size = "tiny"
[dsrm]
max_states = 2000
holdout_fraction = 0.2
[dsrm.denoiser]
kind = "ddpm"
[dsrm.denoiser.schedule]
steps = 5
[dsrm.denoiser.train]
max_epochs = 2
TOML
run dsrm fidelity --config fidelity.toml --out fidelity

python3 - "$WORK" >"$WORK/actual.txt" <<'PY'
import hashlib, json, struct, sys, pathlib
work = pathlib.Path(sys.argv[1])
# grad_updates: a compute count (the DSRM fit records it per epoch since the paper study), not a result.
NOT_RESULTS = ("wall", "elapsed", "wall_time", "created_at", "command", "code_version", "grad_updates")
def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if not (k.endswith("_s") or k in NOT_RESULTS)}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v
def digest(p):
    data = p.read_bytes()
    if p.suffix == ".json":
        data = json.dumps(strip(json.loads(data)), sort_keys=True).encode()
    elif p.suffix == ".bin":  # dsrm_nn::checkpoint: magic, u64 meta length, meta JSON, u64 blob length, blob, sha256
        magic = b"DSRMCKPT1\n"
        assert data.startswith(magic), p
        (n,) = struct.unpack_from("<Q", data, len(magic))
        meta = json.loads(data[len(magic) + 8 : len(magic) + 8 + n])
        blob = data[len(magic) + 8 + n :-32]
        data = json.dumps(strip(meta), sort_keys=True).encode() + b"\0" + blob
    elif p.suffix == ".jsonl":
        data = b"\n".join(json.dumps(strip(json.loads(l)), sort_keys=True).encode() for l in data.splitlines() if l.strip())
    return hashlib.sha256(data).hexdigest()
files = ["eval/metrics.json", "eval/episodes.jsonl"]
for a in ["a2c", "ppo", "dqn", "sac", "hrl", "td3", "dnair", "sac4ir", "mofir", "bcq", "cql", "crr", "sqn"]:
    files += [f"train-{a}/metrics.json", f"train-{a}/log.jsonl"]
files += ["stage/dsrm.bin", "fidelity/fidelity.json", "fidelity/fidelity.csv"]
for f in files:
    print(f"{digest(work / f)}  {f}")
PY
portable "$WORK/actual.txt" >"$WORK/actual-portable.txt"
if [ "${1:-}" = "--record" ]; then
  mkdir -p "$REF"
  cp "$WORK/actual.txt" "$FULL"
  cp "$WORK/actual-portable.txt" "$PORTABLE"
  echo "behaviour-hashes: recorded $(wc -l <"$FULL") hashes in ${FULL#"$ROOT"/} and the $(wc -l <"$PORTABLE") CPU-independent ones in ${PORTABLE#"$ROOT"/}"
elif ! diff -u "$PORTABLE" "$WORK/actual-portable.txt"; then
  echo "behaviour-hashes: results changed on files that are the same on every CPU (see the diff above)" >&2
  exit 1
elif [ ! -f "$FULL" ]; then
  echo "behaviour-hashes: $(wc -l <"$PORTABLE") CPU-independent result files byte-identical; no full reference for this"
  echo "  kind of CPU (${FULL#"$ROOT"/}), so the $(($(wc -l <"$WORK/actual.txt") - $(wc -l <"$PORTABLE"))) files whose low bits follow its instruction set were not checked"
  echo "  (--record with a build checked elsewhere writes it)"
elif diff -u "$FULL" "$WORK/actual.txt"; then
  echo "behaviour-hashes: $(wc -l <"$FULL") result files byte-identical (${FULL#"$ROOT"/})"
else
  echo "behaviour-hashes: results changed (see the diff above)" >&2
  exit 1
fi
