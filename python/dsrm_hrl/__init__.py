"""dsrm-hrl for Python: Gymnasium environments over the project's Rust simulator.

    import gymnasium as gym
    import dsrm_hrl  # registers the environments

    env = gym.make("dsrm/KuaiRec-v0", data_dir="data/KuaiRec 2.0", preset="dorl-paper")
    envs = gym.make_vec("dsrm/KuaiRec-v0", num_envs=1024, vectorization_mode="vector_entry_point",
                        data_dir="data/KuaiRec 2.0", preset="dsrm-hrl-paper")

See `python/README.md` for the observation, the action masks, autoreset and the speed.
"""

import json as _json

from dsrm_hrl import _native
from dsrm_hrl._native import generate_synthetic
from dsrm_hrl.envs import DsrmEnv, DsrmVectorEnv, load_world
from dsrm_hrl.runs import read_run

__all__ = ["DsrmEnv", "DsrmVectorEnv", "generate_synthetic", "load_world", "metrics", "read_run", "ENV_IDS"]


def metrics(world, episodes) -> dict:
    """The metrics `dsrm eval` reports (R_tra, R_each, Length, CV, MCD, Gini, AD_share, AD_item, LongTailShare, ...)
    of finished episodes, each `(user, items, rewards)` in dense indices, computed by the same Rust code.
    `world` is an environment's `unwrapped.world` (or `load_world(...)`)."""
    return _json.loads(_native.metrics(world, [(int(u), list(map(int, i)), list(map(float, r))) for u, i, r in episodes]))

#: Environment id -> data set name.
ENV_IDS = {
    "dsrm/KuaiRec-v0": "kuairec",
    "dsrm/KuaiRand-Pure-v0": "kuairand-pure",
    "dsrm/Coat-v0": "coat",
}


def _register() -> None:
    import gymnasium

    for env_id, dataset in ENV_IDS.items():
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="dsrm_hrl.envs:DsrmEnv",
            vector_entry_point="dsrm_hrl.envs:DsrmVectorEnv",
            # The simulator applies Max Len itself (truncated = True); no TimeLimit wrapper on top.
            max_episode_steps=None,
            kwargs={"dataset": dataset},
        )


_register()
