"""`dsrm experiment --executor ray` on a local Ray instance gives the same bytes as `--executor local`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsrm_hrl

ray = pytest.importorskip("ray")
DSRM = os.environ.get("DSRM_BIN")

pytestmark = pytest.mark.skipif(
    not DSRM or not Path(DSRM).is_file(), reason="set DSRM_BIN to a built dsrm binary (scripts/test-python.sh does)"
)


def test_an_experiment_on_ray_matches_the_local_one_byte_for_byte(tmp_path):
    data = tmp_path / "tiny"
    dsrm_hrl.generate_synthetic(str(data), size="tiny", seed=4)
    cfg = tmp_path / "experiment.toml"
    cfg.write_text(
        f"""seeds = [1, 2]
[data]
dataset = "kuairec"
dir = "{data}"
[eval]
episodes = 5
[world_model]
reward = "mf"
[[methods]]
name = "random"
heuristic = "random"
[[methods]]
name = "a2c"
[methods.train]
epochs = 1
steps_per_epoch = 300
parallel_envs = 10
threads = 1
[methods.train.algorithm]
kind = "a2c"
batch_size = 64
"""
    )

    def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
        args = [DSRM, "experiment", "--config", str(cfg), "--out", str(out), "--jobs", "2", *extra]
        return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, timeout=600)

    local = run(tmp_path / "local")
    assert local.returncode == 0, local.stderr
    remote = run(tmp_path / "ray", "--executor", "ray", "--python", sys.executable)
    assert remote.returncode == 0, remote.stderr
    for name in ["results.csv", "results.json", "a2c/seed-1/metrics.json", "a2c/seed-2/log.jsonl"]:
        assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "ray" / name).read_bytes(), name
    assert (tmp_path / "ray" / "ray-jobs.json").is_file()
    # Resuming on Ray reads the finished runs; --address without --executor ray is refused.
    again = run(tmp_path / "ray", "--executor", "ray", "--python", sys.executable)
    assert again.returncode == 0 and "2 of 2 runs already finished" in again.stderr, again.stderr
    bad = run(tmp_path / "x", "--address", "auto")
    assert bad.returncode != 0 and "--executor ray" in bad.stderr
