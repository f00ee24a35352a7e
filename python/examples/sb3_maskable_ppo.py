"""Stable-Baselines3 (sb3-contrib's MaskablePPO) on `dsrm/KuaiRec-v0`, scored with the project's metrics.

    bash scripts/setup-examples.sh                       # once: .venv-examples with torch, SB3, sb3-contrib, dsrm_hrl
    .venv-examples/bin/python python/examples/sb3_maskable_ppo.py [--data-dir DIR] [--timesteps 30000]

Without `--data-dir` it trains on a tiny synthetic KuaiRec it generates (labelled SYNTHETIC). The policy reads the
fixed-shape Dict observation (user, last 10 items and rewards) through SB3's MultiInputPolicy and acts under the
NX mask (`action_masks()`: no item twice in a session). It is then evaluated next to a masked uniform-random
policy on the same seeded users, and both are scored by the Rust metrics of `dsrm eval` (`dsrm_hrl.metrics`).
A short example, not a study: users are not split into training and test sets here.
"""

from __future__ import annotations

import argparse
import tempfile

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO

import dsrm_hrl


def rollout(env, act, episodes: int, seed: int) -> list[tuple[int, list[int], list[float]]]:
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        items, rewards, done = [], [], False
        while not done:
            mask = env.unwrapped.action_masks()
            action = act(obs, mask)
            obs, r, terminated, truncated, _ = env.step(action)
            items.append(int(action))
            rewards.append(float(r))
            done = terminated or truncated
        out.append((int(obs["user"]), items, rewards))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir")
    p.add_argument("--preset", default="dorl-paper")
    p.add_argument("--timesteps", type=int, default=30_000)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data_dir = args.data_dir
    if data_dir is None:
        data_dir = tempfile.mkdtemp() + "/kuairec-tiny"
        dsrm_hrl.generate_synthetic(data_dir, size="tiny", seed=args.seed)
    env = gym.make("dsrm/KuaiRec-v0", data_dir=data_dir, preset=args.preset)
    world = env.unwrapped.world
    label = "SYNTHETIC " if world.synthetic else ""
    print(f"{label}{world.dataset}: {world.n_users} users, {world.n_items} items, preset {args.preset}")

    model = MaskablePPO("MultiInputPolicy", env, seed=args.seed, verbose=0, n_steps=1024, batch_size=256)
    model.learn(total_timesteps=args.timesteps)

    rng = np.random.default_rng(args.seed)
    policies = {
        "MaskablePPO": lambda obs, mask: int(model.predict(obs, action_masks=mask, deterministic=False)[0]),
        "random (masked)": lambda obs, mask: int(rng.choice(np.flatnonzero(mask))),
    }
    print(f"{'policy':<18} {'R_tra':>8} {'R_each':>8} {'Length':>8} {'Gini':>8} {'AD_share':>9} {'LongTail':>9}")
    for name, act in policies.items():
        episodes = rollout(env, act, args.episodes, seed=10_000)
        m = dsrm_hrl.metrics(world, episodes)
        print(
            f"{name:<18} {m['R_tra']:>8.3f} {m['R_each']:>8.3f} {m['Length']:>8.2f} {m['Gini']:>8.3f} "
            f"{m['AD_share']:>9.3f} {m['LongTailShare']:>9.3f}"
        )


if __name__ == "__main__":
    main()
