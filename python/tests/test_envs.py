"""The Gymnasium face of dsrm-hrl: check_env on each data set, seeding, the masks, autoreset, and agreement
between the single and the vector environment."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import dsrm_hrl
from dsrm_hrl.envs import QUIT_NAMES

SHARED = Path(os.environ.get("DSRM_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("data") / "kuairec-tiny"
    dsrm_hrl.generate_synthetic(str(out), size="tiny", seed=3)
    return str(out)


def test_kuairec_passes_check_env_and_seeds_reproduce(tiny):
    env = gym.make("dsrm/KuaiRec-v0", data_dir=tiny, preset="dsrm-hrl-paper")
    check_env(env.unwrapped, skip_render_check=True)
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    assert a["user"] == b["user"]
    users = {env.reset(seed=s)[0]["user"] for s in range(20)}
    assert len(users) > 5, "different seeds draw different users"


@pytest.mark.skipif(not (SHARED / "coat").is_dir(), reason="../shared/data/coat is not in this checkout")
def test_coat_passes_check_env():
    env = gym.make("dsrm/Coat-v0", data_dir=str(SHARED / "coat"), preset="dorl-paper")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space.n == 300


@pytest.mark.skipif(not (SHARED / "kuairand-pure").is_dir(), reason="../shared/data/kuairand-pure is not here")
def test_kuairand_pure_sample_passes_check_env():
    env = gym.make("dsrm/KuaiRand-Pure-v0", data_dir=str(SHARED / "kuairand-pure"), preset="dorl-paper")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space.n == 7583


def test_an_episode_ends_by_its_rule_masks_follow_it_and_observations_are_the_last_steps(tiny):
    env = gym.make("dsrm/KuaiRec-v0", data_dir=tiny, preset="dsrm-hrl-paper", window=4).unwrapped
    obs, _ = env.reset(seed=1)
    shown, rewards = [], []
    for t in range(env.world.max_turn):
        mask = env.action_masks()
        assert mask.shape == (env.world.n_items,) and mask.sum() == env.world.n_items - len(shown)
        action = int(np.flatnonzero(mask)[t % 7])
        obs, r, terminated, truncated, info = env.step(action)
        shown.append(action)
        rewards.append(r)
        assert list(obs["history"][-min(4, len(shown)):]) == shown[-4:]
        assert np.allclose(obs["rewards"][-min(4, len(shown)):], rewards[-4:])
        assert info["video_id"] == int(env.world.item_ids()[action])
        if terminated or truncated:
            assert info["quit"] in {"category", "popularity", "max_len"}
            assert truncated == (info["quit"] == "max_len") and terminated != truncated
            break
    else:
        pytest.fail("no episode ended within Max Len")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="item index"):
        env.reset(seed=1)
        env.step(env.world.n_items)


def test_the_vector_env_is_made_by_make_vec_autoresets_next_step_and_matches_the_single_env(tiny):
    kwargs = dict(data_dir=tiny, preset="dsrm-hrl-paper")
    envs = gym.make_vec("dsrm/KuaiRec-v0", num_envs=8, vectorization_mode="vector_entry_point", **kwargs)
    assert isinstance(envs, dsrm_hrl.DsrmVectorEnv)
    obs, _ = envs.reset(seed=5)
    assert obs["history"].shape == (8, 10) and (obs["history"] == -1).all()
    rng = np.random.default_rng(0)
    ended = np.zeros(8, dtype=bool)
    for _ in range(200):
        actions = rng.integers(0, envs.single_action_space.n, size=8)
        obs, reward, terminated, truncated, info = envs.step(actions)
        # The step after an end resets: a fresh session (empty window), reward 0, neither flag.
        assert (reward[ended] == 0).all() and not (terminated | truncated)[ended].any()
        assert (obs["history"][ended] == -1).all()
        done = terminated | truncated
        assert ((info["quit"] > 0) == done).all()
        assert set(QUIT_NAMES[int(q)] for q in info["quit"][done]) <= {"category", "popularity", "max_len"}
        ended = done
    assert envs.action_masks().shape == (8, envs.single_action_space.n)
    # One session of the vector env follows the same rules as the single env: replay its actions.
    single = gym.make("dsrm/KuaiRec-v0", **kwargs).unwrapped
    batch = envs._batch
    user, items, total = batch.session(0)
    single._batch.reset(0)
    # Put the single env's session on the same user by stepping a copy of the world's semantics:
    one = dsrm_hrl._native.Batch(single.world, 1, 10, autoreset=False, seed=0)
    one.reset(0)
    while one.session(0)[0] != user:
        one.reset(None)
    got = 0.0
    for k, item in enumerate(items):
        _, r, term, trunc, _ = one.step(np.array([item], dtype=np.int64))
        got += r[0]
        assert bool(term[0] or trunc[0]) == (k == len(items) - 1) or k < len(items) - 1
    assert got == pytest.approx(total)


def test_bad_arguments_name_what_is_wrong(tiny):
    with pytest.raises(ValueError, match="data_dir is required"):
        gym.make("dsrm/KuaiRec-v0")
    with pytest.raises(ValueError, match="preset"):
        gym.make("dsrm/KuaiRec-v0", data_dir=tiny, preset="no-such-preset")
    with pytest.raises(ValueError, match="unknown field"):
        gym.make("dsrm/KuaiRec-v0", data_dir=tiny, env={"max_turns": 3})
    with pytest.raises(ValueError, match="missing file"):
        gym.make("dsrm/KuaiRec-v0", data_dir=str(Path(tiny).parent))


def test_read_run_reads_a_run_directory(tmp_path):
    (tmp_path / "metrics.json").write_text('{"NX_0": {"R_tra": 1.5}}')
    (tmp_path / "log.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    run = dsrm_hrl.read_run(tmp_path)
    assert run["metrics"]["NX_0"]["R_tra"] == 1.5 and [r["epoch"] for r in run["log"]] == [1, 2]
    with pytest.raises(FileNotFoundError):
        dsrm_hrl.read_run(tmp_path / "missing")


def test_metrics_are_the_rust_metrics_of_the_episodes(tiny):
    env = gym.make("dsrm/KuaiRec-v0", data_dir=tiny, preset="dorl-paper").unwrapped
    episodes = []
    for k in range(30):
        obs, _ = env.reset(seed=k)
        items, rewards, done = [], [], False
        while not done:
            action = int(np.flatnonzero(env.action_masks())[0])
            obs, r, terminated, truncated, _ = env.step(action)
            items.append(action)
            rewards.append(r)
            done = terminated or truncated
        episodes.append((obs["user"], items, rewards))
    m = dsrm_hrl.metrics(env.world, episodes)
    assert m["R_tra"] == pytest.approx(np.mean([sum(r) for _, _, r in episodes]))
    assert m["Length"] == pytest.approx(np.mean([len(i) for _, i, _ in episodes]))
    assert 0.0 <= m["Gini"] <= 1.0 and "AD_share" in m
    with pytest.raises(ValueError, match="episodes"):
        dsrm_hrl.metrics(env.world, [(0, [env.world.n_items], [1.0])])
    with pytest.raises(IndexError, match="user"):
        dsrm_hrl.metrics(env.world, [(env.world.n_users, [0], [1.0])])
