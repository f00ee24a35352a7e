"""A trained run's policy from Python through `dsrm serve` (`dsrm_hrl.policy`)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import gymnasium as gym
import pytest

import dsrm_hrl
from dsrm_hrl.policy import PolicyError, ServedPolicy, rollout

DSRM = os.environ.get("DSRM_BIN")

pytestmark = pytest.mark.skipif(
    not DSRM or not Path(DSRM).is_file(), reason="set DSRM_BIN to a built dsrm binary (scripts/test-python.sh does)"
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("policy")
    data = root / "tiny"
    dsrm_hrl.generate_synthetic(str(data), size="tiny", seed=5)
    cfg = root / "train.toml"
    cfg.write_text(
        f"""[data]
dataset = "kuairec"
dir = "{data}"
[env]
preset = "dorl-paper"
[eval]
episodes = 5
[world_model]
reward = "mf"
[train]
epochs = 1
steps_per_epoch = 200
parallel_envs = 10
seed = 1
[train.algorithm]
kind = "a2c"
"""
    )
    run = root / "run"
    subprocess.run([DSRM, "train", "--config", str(cfg), "--out", str(run)], check=True, capture_output=True)
    return data, run


def test_recommend_feedback_and_errors(trained):
    _, run = trained
    with ServedPolicy(run, dsrm_bin=DSRM, seed=3) as policy:
        assert policy.info["n_items"] > 0
        user = policy.info["sample_user_ids"][0]
        first = policy.recommend("s1", user, k=5)
        assert len(first["items"]) == 5 == len(set(first["items"])) == len(first["scores"])
        policy.feedback("s1", first["items"][0], 1.0)
        after = policy.recommend("s1", user, k=50)
        assert first["items"][0] not in after["items"], "a consumed item is masked"
        with pytest.raises(PolicyError, match='"k"'):
            policy.recommend("s2", user, k=0)
        with pytest.raises(PolicyError, match="404"):
            policy.feedback("no-such-session", first["items"][0], 1.0)
    # The same seed and requests give the same recommendations after a restart.
    with ServedPolicy(run, dsrm_bin=DSRM, seed=3) as again:
        assert again.recommend("s1", user, k=5)["items"] == first["items"]


def test_rollout_in_the_gymnasium_env_is_scored_by_the_project_metrics(trained):
    data, run = trained
    env = gym.make("dsrm/KuaiRec-v0", data_dir=str(data), preset="dorl-paper")
    with ServedPolicy(run, dsrm_bin=DSRM, seed=1) as policy:
        episodes = rollout(policy, env, episodes=3, seed=7)
    assert len(episodes) == 3 and all(len(items) == len(rewards) > 0 for _, items, rewards in episodes)
    assert all(len(set(items)) == len(items) for _, items, _ in episodes), "the policy never repeats an item"
    m = dsrm_hrl.metrics(env.unwrapped.world, episodes)
    assert m["Length"] == pytest.approx(sum(len(i) for _, i, _ in episodes) / 3)


def test_a_missing_binary_or_run_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="DSRM_BIN"):
        ServedPolicy(tmp_path, dsrm_bin=str(tmp_path / "nope"))
    with pytest.raises(PolicyError, match="did not start"):
        ServedPolicy(tmp_path / "not-a-run", dsrm_bin=DSRM, startup_timeout=60)
