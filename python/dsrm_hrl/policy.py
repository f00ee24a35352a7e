"""A trained `dsrm` run's policy from Python, through `dsrm serve` (no PyTorch needed).

The policy runs where it was trained to run, in the `dsrm` binary (libtorch, the DSRM stage, the HRL goal
segments, the NX mask), behind the same HTTP server production would use (`docs/serving.md`); this module starts
that server on a free loopback port and talks to it with the standard library. So the wheel stays free of the
neural stack, and Python sees exactly the decisions `dsrm serve` makes.

    from dsrm_hrl.policy import ServedPolicy, rollout

    with ServedPolicy("runs/hrl", seed=1) as policy:
        items = policy.recommend("session-1", user_id=8, k=10)["items"]
        policy.feedback("session-1", video_id=items[0], reward=1.3)
        episodes = rollout(policy, env, episodes=100, seed=1)      # play it in a dsrm/… Gymnasium env
        print(dsrm_hrl.metrics(env.unwrapped.world, episodes))
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

_LISTENING = re.compile(r" on (http://[0-9.]+:[0-9]+);")


class PolicyError(RuntimeError):
    """The server refused a request (its JSON error names the field) or could not start."""


def _binary(dsrm_bin: str | None) -> str:
    found = dsrm_bin or os.environ.get("DSRM_BIN") or shutil.which("dsrm")
    if not found or not Path(found).is_file():
        raise FileNotFoundError(
            "no dsrm binary: pass dsrm_bin=, set DSRM_BIN, or put `dsrm` on PATH "
            "(cargo build --release; the binary is target/release/dsrm)"
        )
    return found


class ServedPolicy:
    """`dsrm serve --run RUN` on a free loopback port, and its endpoints as methods.

    `seed` makes sampled recommendations reproducible (the same seed, run and requests give the same items);
    `selection` is `"sampled"` or `"argmax"` (default: the run's). `close()` (or leaving a `with` block) stops the
    server with SIGTERM, which answers the requests in flight first."""

    def __init__(self, run_dir: str | Path, *, dsrm_bin: str | None = None, seed: int = 0,
                 selection: str | None = None, startup_timeout: float = 120.0):
        cmd = [_binary(dsrm_bin), "serve", "--run", str(run_dir), "--addr", "127.0.0.1:0", "--seed", str(seed)]
        if selection is not None:
            cmd += ["--selection", selection]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._log: list[str] = []
        found = threading.Event()
        self.url = ""

        def read_stderr() -> None:
            assert self._proc.stderr is not None
            for line in self._proc.stderr:
                self._log.append(line.rstrip("\n"))
                m = _LISTENING.search(line)
                if m and not found.is_set():
                    self.url = m.group(1)
                    found.set()
            found.set()  # the server exited

        threading.Thread(target=read_stderr, daemon=True).start()
        if not found.wait(startup_timeout) or not self.url:
            self._proc.kill()
            raise PolicyError(f"dsrm serve did not start within {startup_timeout} s:\n" + "\n".join(self._log[-20:]))
        #: `GET /healthz`: the run, data set, policy, selection, catalogue size, reward range, some user ids.
        self.info: dict[str, Any] = self._call("GET", "/healthz")

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise PolicyError(f"{method} {path}: HTTP {e.code}: {detail}") from None
        return json.loads(text) if text else None

    def recommend(self, session_id: str, user_id: int, k: int = 10) -> dict[str, Any]:
        """`POST /v1/recommend`: `{"items": [video ids], "scores": [...], "policy": ..., "fairness": {...}}`, the
        top k for the session's current state after masking what it consumed. `user_id` is the data set's id."""
        return self._call("POST", "/v1/recommend", {"session_id": session_id, "user_id": int(user_id), "k": int(k)})

    def feedback(self, session_id: str, video_id: int, reward: float) -> None:
        """`POST /v1/feedback`: the session consumed `video_id` (the data set's id) with `reward`."""
        self._call("POST", "/v1/feedback",
                   {"session_id": session_id, "video_id": int(video_id), "reward": float(reward)})

    def metrics_text(self) -> str:
        """`GET /metrics`, the Prometheus text."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=60) as resp:
            return resp.read().decode()

    def close(self) -> int:
        """Stops the server (SIGTERM) and returns its exit status."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode

    def __enter__(self) -> "ServedPolicy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rollout(policy: ServedPolicy, env, episodes: int, seed: int | None = None) -> list[tuple[int, list[int], list[float]]]:
    """Plays `episodes` sessions of a `dsrm/…` Gymnasium env with `policy` (one recommendation a step, its
    feedback the env's reward) and returns them as `(user, items, rewards)` in the env's dense indices, the form
    `dsrm_hrl.metrics` scores. The env must be over the data the run was trained on."""
    world = env.unwrapped.world
    user_ids, item_ids = world.user_ids(), world.item_ids()
    dense_item = {int(v): i for i, v in enumerate(item_ids)}
    out = []
    for e in range(episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + e)
        user = int(obs["user"])
        session = f"rollout-{seed}-{e}"
        items: list[int] = []
        rewards: list[float] = []
        while True:
            video = policy.recommend(session, int(user_ids[user]), k=1)["items"][0]
            obs, reward, terminated, truncated, _ = env.step(dense_item[int(video)])
            policy.feedback(session, video, reward)
            items.append(dense_item[int(video)])
            rewards.append(float(reward))
            if terminated or truncated:
                break
        out.append((user, items, rewards))
    return out
