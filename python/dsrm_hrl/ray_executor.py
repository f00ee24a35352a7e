"""Runs `dsrm train` jobs as Ray tasks: the executor of `dsrm experiment --executor ray`.

    python -m dsrm_hrl.ray_executor --jobs RUN/ray-jobs.json --exe /path/to/dsrm [--address ray://HEAD:10001]

`RUN/ray-jobs.json` (written by `dsrm experiment`) lists the unfinished (method, seed) runs, each a run
directory with its `job.toml`. Each becomes one Ray task that needs one CPU and executes the same `dsrm train
--resume --config job.toml --out DIR` a local run would, on whichever node has capacity, writing into the run
directory; so the results are the same bytes as with `--executor local`, and an interrupted experiment resumes
the same way. Every node must see the `dsrm` executable and the run directory at the same paths (a shared file
system). Without `--address` a local Ray instance is started for the duration (as `ray.init()` does).
Exit status 1 when a task fails, naming each failed run's log."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def _train(exe: str, config: str, out: str) -> int:
    log = Path(out) / "train.log"
    with log.open("w") as f:
        done = subprocess.run([exe, "train", "--resume", "--config", config, "--out", out], stdout=f, stderr=subprocess.STDOUT)
    return done.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="dsrm experiment's Ray executor")
    p.add_argument("--jobs", required=True, help="the experiment's ray-jobs.json")
    p.add_argument("--exe", required=True, help="the dsrm executable (at the same path on every node)")
    p.add_argument("--address", default=None, help="an existing cluster (ray://HOST:10001 or auto)")
    args = p.parse_args(argv)
    try:
        import ray
    except ImportError:
        print("dsrm --executor ray needs Ray in this Python: pip install 'ray==2.60.0'", file=sys.stderr)
        return 2
    jobs = json.loads(Path(args.jobs).read_text())
    ray.init(address=args.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    task = ray.remote(num_cpus=1)(_train)
    refs = {task.remote(args.exe, j["config"], j["dir"]): j for j in jobs}
    failed = []
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for ref in ready:
            job = refs[ref]
            code = ray.get(ref)
            status = "done" if code == 0 else f"failed (exit {code})"
            print(f"ray: {job['dir']}: {status}", flush=True)
            if code != 0:
                failed.append(job["dir"])
    ray.shutdown()
    if failed:
        print("ray: failed runs (see train.log in each):\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
