"""Steps/s of the Gymnasium environments from Python: random actions, resets included.

    .venv-py/bin/python python/bench/env_speed.py --data-dir .cache/dsrm/synthetic-kuairec-full-seed0

Single env: `env.step(action)` per step, actions drawn by NumPy, `env.reset()` when a session ends.
VectorEnv: `envs.step(actions)` on `num_envs` sessions per call, actions drawn by NumPy for the whole batch
(drawing them is timed too), autoreset in Rust. For comparison, DORL's own Python `KuaiEnv` makes about
0.33-0.44 M steps/s (docs/protocol.md §8)."""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import dsrm_hrl  # noqa: F401  (registers the environments)


def single(data_dir: str, preset: str, seconds: float) -> float:
    env = gym.make("dsrm/KuaiRec-v0", data_dir=data_dir, preset=preset).unwrapped
    rng = np.random.default_rng(0)
    n = env.action_space.n
    env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in rng.integers(0, n, size=1000):
            _, _, terminated, truncated, _ = env.step(int(a))
            if terminated or truncated:
                env.reset()
        steps += 1000
    return steps / (time.perf_counter() - start)


def vector(data_dir: str, preset: str, num_envs: int, seconds: float) -> float:
    envs = gym.make_vec(
        "dsrm/KuaiRec-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", data_dir=data_dir, preset=preset
    )
    rng = np.random.default_rng(0)
    n = envs.single_action_space.n
    envs.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(rng.integers(0, n, size=num_envs))
        steps += num_envs
    return steps / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--preset", default="dorl-paper")
    p.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024, 4096])
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    gym.make("dsrm/KuaiRec-v0", data_dir=args.data_dir, preset=args.preset)  # load once, outside the timing
    out = {"preset": args.preset, "single_env_steps_per_s": single(args.data_dir, args.preset, args.seconds)}
    for n in args.num_envs:
        out[f"vector_env_{n}_steps_per_s"] = vector(args.data_dir, args.preset, n, args.seconds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
