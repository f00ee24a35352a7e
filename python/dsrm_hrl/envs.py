"""The Gymnasium environments: one session (`DsrmEnv`) and many sessions in one Rust call (`DsrmVectorEnv`).

Observation (both): a `Dict` with
    user     the session's user, a dense index in [0, n_users) (`world.user_ids()` maps it to the data set's id);
    history  the last `window` items shown, dense indices, oldest first, -1 before the session's first step;
    rewards  their rewards (float32), 0 where `history` is -1.
Action: `Discrete(n_items)`, a dense item index (`world.item_ids()` maps it to the data set's video id).
`terminated`: the user left (a quit rule fired); `truncated`: the session reached Max Len.
`action_masks()`: True where an item has not been shown in the session yet (the NX mask; maskable PPO's
convention). The simulator does not enforce it: repeats are allowed (the anchors' FB mode).
"""

from __future__ import annotations

import functools
import json
import operator
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from dsrm_hrl._native import Batch, World

#: `info["quit"]` codes of the vector environment, and the names the single environment uses.
QUIT_NAMES = {0: None, 1: "category", 2: "distance", 3: "popularity", 4: "max_len"}


@functools.lru_cache(maxsize=4)
def _load(dataset: str, data_dir: str, env_json: str, world_json: str) -> World:
    return World(dataset, data_dir, env_json, world_json)


def load_world(
    dataset: str, data_dir: str | None, preset: str = "dorl-paper", env: dict | None = None, world: dict | None = None
) -> World:
    """A data set's world under a preset (and `[env]` / `[world]` overrides, as in the `dsrm` configs).

    Loaded once per process for the same arguments (KuaiRec takes about half a minute)."""
    if data_dir is None:
        raise ValueError(
            "data_dir is required: the directory with the data set's official files "
            "(or one written by dsrm_hrl.generate_synthetic)"
        )
    env_table = {"preset": preset, **(env or {})}
    return _load(dataset, str(data_dir), json.dumps(env_table, sort_keys=True), json.dumps(world or {}, sort_keys=True))


def _spaces(world: World, window: int) -> tuple[spaces.Dict, spaces.Discrete]:
    low, high = world.reward_range
    # Padding is 0, so the bounds include it.
    low, high = min(low, 0.0), max(high, 0.0)
    obs = spaces.Dict(
        {
            "user": spaces.Discrete(world.n_users),
            "history": spaces.Box(-1, world.n_items - 1, shape=(window,), dtype=np.int64),
            "rewards": spaces.Box(np.float32(low), np.float32(high), shape=(window,), dtype=np.float32),
        }
    )
    return obs, spaces.Discrete(world.n_items)


class DsrmEnv(gymnasium.Env):
    """One recommendation session at a time."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        dataset: str = "kuairec",
        data_dir: str | None = None,
        preset: str = "dorl-paper",
        window: int = 10,
        env: dict | None = None,
        world: dict | None = None,
        render_mode: str | None = None,
    ):
        self.world = load_world(dataset, data_dir, preset, env, world)
        self.window = window
        self._batch = Batch(self.world, 1, window, autoreset=False, seed=0)
        self.observation_space, self.action_space = _spaces(self.world, window)
        self._user_ids = self.world.user_ids()
        self._item_ids = self.world.item_ids()
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            stream = seed
        elif not self._seeded:
            stream = int(self.np_random.integers(2**63))
        else:
            stream = None
        self._seeded = True
        users, items, rewards = self._batch.reset(stream)
        obs = {"user": int(users[0]), "history": items[0], "rewards": rewards[0]}
        return obs, {"user_id": int(self._user_ids[users[0]])}

    def step(self, action):
        try:
            item = operator.index(action)
        except TypeError:
            raise ValueError(f"action {action!r}: expected an item index in [0, {self.world.n_items})") from None
        if not 0 <= item < self.world.n_items:
            raise ValueError(f"action {action!r}: expected an item index in [0, {self.world.n_items})")
        user, items, rewards, reward, terminated, truncated, quit = self._batch.step_one(item)
        info: dict[str, Any] = {
            "reward": reward,
            "user_id": int(self._user_ids[user]),
            "video_id": int(self._item_ids[item]),
            "quit": QUIT_NAMES[quit],
        }
        return {"user": user, "history": items, "rewards": rewards}, reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        """[n_items] booleans: True where the item has not been shown in this session."""
        return self._batch.action_masks()[0]


class DsrmVectorEnv(VectorEnv):
    """`num_envs` sessions stepped in one Rust call on NumPy arrays.

    Autoreset is gymnasium's next-step mode: the `step` after a session ends resets it, ignores its action and
    returns reward 0 with neither flag set. `info["quit"]` holds why each session ended on this step
    (`QUIT_NAMES`). Masks only when asked for (`action_masks()`)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int,
        dataset: str = "kuairec",
        data_dir: str | None = None,
        preset: str = "dorl-paper",
        window: int = 10,
        env: dict | None = None,
        world: dict | None = None,
        render_mode: str | None = None,
    ):
        self.world = load_world(dataset, data_dir, preset, env, world)
        self.num_envs = num_envs
        self.window = window
        self._batch = Batch(self.world, num_envs, window, autoreset=True, seed=0)
        self.single_observation_space, self.single_action_space = _spaces(self.world, window)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):
            seed = seed[0] if seed else None
        super().reset(seed=seed)
        stream = seed if seed is not None else int(self.np_random.integers(2**63))
        users, items, rewards = self._batch.reset(stream)
        return {"user": users, "history": items, "rewards": rewards}, {}

    def step(self, actions):
        actions = np.ascontiguousarray(actions, dtype=np.int64).reshape(self.num_envs)
        (users, items, rewards), reward, terminated, truncated, quit = self._batch.step(actions)
        obs = {"user": users, "history": items, "rewards": rewards}
        return obs, reward, terminated, truncated, {"quit": quit}

    def action_masks(self) -> np.ndarray:
        """[num_envs, n_items] booleans: True where the item has not been shown in the session."""
        return self._batch.action_masks()
