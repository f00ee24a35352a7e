#!/usr/bin/env python3
"""Compare dsrm's libtorch (tch) training step and batch-1 inference with PyTorch on the same nets, in pairs.

Workloads (identical on both sides): MLP 128-256-256-128 with SiLU; (a) forward + MSE + backward + Adam
(lr 1e-3) at batch 256, loss read back every step, 2000 timed steps after 100 warm-up steps; (c) batch-1
inference, list of floats -> tensor -> forward -> list, median of 10,000 calls after 500 warm-up calls.

Same PyTorch version as the libtorch dsrm links (torch==2.13.0). The lean libtorch install that dsrm builds
against cannot be imported from Python (it leaves out cuDNN and torch's Python dependencies), so the PyTorch side
runs in its own full install (4.7 GB, `.venv-bench`). Not part of CI. Run from the repository root:

    bash scripts/setup-libtorch.sh && cargo build --release --locked
    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/python bench/nn_vs_pytorch.py                        # 7 pairs at 1 and at 2 threads
    .venv-bench/bin/python bench/nn_vs_pytorch.py --pairs 11 --threads 2 --out pairs.json

How the comparison is made. Timing one side after the other lets the machine's state drift between them (three
such runs gave 0.78x, 1.38x and 0.98x for the same workload), so both sides run ALTERNATELY in one run. For each
thread count the script runs `--pairs` pairs; a pair is one run of ours (`target/release/dsrm bench nn`, as
before) and one run of theirs (this script's PyTorch worker), each in its own fresh process, one right after the
other. The order within a pair alternates (pair 0: ours then theirs; pair 1: theirs then ours; ...), or is drawn
at random with `--order random --seed S`. Each pair gives one ratio per workload, measured under the same
conditions; the table reports the median of those paired ratios, their minimum and maximum, and the number of
pairs. Ratios > 1 mean dsrm is faster (train: dsrm steps/s / PyTorch steps/s; batch-1: PyTorch us / dsrm us).
Every pair's raw figures go to stderr as it finishes, and to `--out FILE` (JSON) if given.
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

THREADS = [1, 2]
DSRM = "target/release/dsrm"
TORCH_VERSION = "2.13.0"


def pytorch(threads: int, steps: int = 2000, calls: int = 10_000) -> dict:
    """The PyTorch side: run in a fresh process by `--worker pytorch` (see `theirs`)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(128, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(), torch.nn.Linear(256, 128)
    )
    x, y = torch.randn(256, 128), torch.randn(256, 128)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def run(n: int) -> None:
        for _ in range(n):
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

    run(100)
    start = time.perf_counter()
    run(steps)
    train = steps / (time.perf_counter() - start)
    values = [i / 128 for i in range(128)]
    times = []
    with torch.no_grad():
        for i in range(calls + 500):
            t0 = time.perf_counter()
            net(torch.tensor(values).reshape(1, 128)).reshape(-1).tolist()
            if i >= 500:
                times.append((time.perf_counter() - t0) * 1e6)
    return {"train_steps_per_second": train, "infer_median_us": statistics.median(times)}


def theirs(threads: int, steps: int, calls: int) -> dict:
    """One PyTorch measurement in its own process, like ours, so neither side inherits the other's state."""
    cmd = [sys.executable, __file__, "--worker", "pytorch", "--threads", str(threads), "--steps", str(steps), "--calls", str(calls)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(threads: int, steps: int, calls: int) -> dict:
    """One dsrm measurement: `dsrm bench nn`, read back from its JSON."""
    out = f"/tmp/dsrm-bench-nn-{threads}.json"
    cmd = [DSRM, "bench", "nn", "--threads", str(threads), "--steps", str(steps), "--calls", str(calls), "--out", out]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    rows = json.load(open(out))["results"]
    train = {r["optimizer"]: r["steps_per_second"] for r in rows if "steps_per_second" in r}
    infer = next(r["median_us"] for r in rows if r["workload"] == "mlp_infer_b1")
    return {"train_tch_adam": train["tch Adam"], "train_dsrm_adam": train["dsrm Adam (checkpointable)"], "infer_median_us": infer}


def ratios(d: dict, p: dict) -> dict:
    """The paired ratios of one pair; > 1 means dsrm is faster."""
    return {
        "train_dsrm_adam": d["train_dsrm_adam"] / p["train_steps_per_second"],
        "train_tch_adam": d["train_tch_adam"] / p["train_steps_per_second"],
        "infer_b1": p["infer_median_us"] / d["infer_median_us"],
    }


def summary(values: list) -> str:
    """median [min, max] of paired ratios."""
    return f"{statistics.median(values):.2f}x [{min(values):.2f}, {max(values):.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=7, help="pairs per thread count (default 7)")
    parser.add_argument("--threads", default=",".join(map(str, THREADS)), help="thread counts, comma-separated (default 1,2)")
    parser.add_argument("--steps", type=int, default=2000, help="timed training steps per measurement (default 2000)")
    parser.add_argument("--calls", type=int, default=10_000, help="timed batch-1 calls per measurement (default 10000)")
    parser.add_argument("--order", choices=["alternate", "random"], default="alternate", help="order within a pair")
    parser.add_argument("--seed", type=int, default=0, help="seed of --order random")
    parser.add_argument("--out", help="write every pair's figures and ratios here as JSON")
    parser.add_argument("--worker", choices=["pytorch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",") if t]

    import torch

    if torch.__version__.split("+")[0] != TORCH_VERSION:
        sys.exit(f"PyTorch {torch.__version__}; the comparison needs torch=={TORCH_VERSION}, the version dsrm links")
    if args.worker == "pytorch":
        print(json.dumps(pytorch(threads[0], args.steps, args.calls)))
        return
    if not Path(DSRM).exists():
        sys.exit(f"{DSRM} not found: run from the repository root after `cargo build --release --locked`")
    if args.pairs < 1:
        sys.exit("--pairs must be at least 1")

    rng = random.Random(args.seed)
    record = {"torch": torch.__version__, "pairs": args.pairs, "steps": args.steps, "calls": args.calls, "order": args.order, "runs": []}
    table = []
    for n in threads:
        got = []
        for i in range(args.pairs):
            ours_first = (i % 2 == 0) if args.order == "alternate" else (rng.random() < 0.5)
            if ours_first:
                d = ours(n, args.steps, args.calls)
                p = theirs(n, args.steps, args.calls)
            else:
                p = theirs(n, args.steps, args.calls)
                d = ours(n, args.steps, args.calls)
            r = ratios(d, p)
            got.append(r)
            record["runs"].append({"threads": n, "pair": i, "first": "dsrm" if ours_first else "pytorch", "dsrm": d, "pytorch": p, "ratios": r})
            print(
                f"threads {n} pair {i + 1}/{args.pairs} ({'dsrm' if ours_first else 'PyTorch'} first): "
                f"train {d['train_dsrm_adam']:.0f} vs {p['train_steps_per_second']:.0f} steps/s = {r['train_dsrm_adam']:.2f}x; "
                f"batch-1 {d['infer_median_us']:.1f} vs {p['infer_median_us']:.1f} us = {r['infer_b1']:.2f}x",
                file=sys.stderr,
                flush=True,
            )
        table.append((n, got))

    print(f"Paired comparison, {args.pairs} pairs per thread count ({args.order} order), torch {torch.__version__}.")
    print("Ratios > 1: dsrm faster. Each cell: median of the paired ratios [min, max].")
    print("| threads | pairs | train: dsrm Adam (checkpointable) / PyTorch | train: tch Adam / PyTorch | batch-1: PyTorch us / dsrm us |")
    print("|---|---|---|---|---|")
    for n, got in table:
        print(
            f"| {n} | {len(got)} | {summary([g['train_dsrm_adam'] for g in got])} | "
            f"{summary([g['train_tch_adam'] for g in got])} | {summary([g['infer_b1'] for g in got])} |"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
