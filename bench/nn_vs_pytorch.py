#!/usr/bin/env python3
"""Compare dsrm's libtorch (tch) training step and batch-1 inference with PyTorch on the same nets.

Workloads (identical on both sides): MLP 128-256-256-128 with SiLU; (a) forward + MSE + backward + Adam
(lr 1e-3) at batch 256, loss read back every step, 2000 timed steps after 100 warm-up steps; (c) batch-1
inference, list of floats -> tensor -> forward -> list, median of 10,000 calls after 500 warm-up calls.

Same PyTorch version as the libtorch dsrm links (torch==2.13.0). The lean libtorch install that dsrm builds
against cannot be imported from Python (it leaves out cuDNN and torch's Python dependencies), so the PyTorch side
runs in its own full install (4.7 GB, `.venv-bench`). Not part of CI. Run from the repository root:

    bash scripts/setup-libtorch.sh && cargo build --release
    python3 -m venv .venv-bench && .venv-bench/bin/pip install torch==2.13.0
    .venv-bench/bin/python bench/nn_vs_pytorch.py
"""
import json
import statistics
import subprocess
import sys
import time

THREADS = [1, 2]


def pytorch(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(128, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(), torch.nn.Linear(256, 128)
    )
    x, y = torch.randn(256, 128), torch.randn(256, 128)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def steps(n: int) -> None:
        for _ in range(n):
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss.item()

    steps(100)
    start = time.perf_counter()
    steps(2000)
    train = 2000 / (time.perf_counter() - start)
    values = [i / 128 for i in range(128)]
    times = []
    with torch.no_grad():
        for i in range(10_500):
            t0 = time.perf_counter()
            out = net(torch.tensor(values).reshape(1, 128)).reshape(-1).tolist()
            if i >= 500:
                times.append((time.perf_counter() - t0) * 1e6)
    return {"train_steps_per_second": train, "infer_median_us": statistics.median(times)}


def dsrm(threads: int) -> dict:
    out = f"/tmp/dsrm-bench-nn-{threads}.json"
    subprocess.run(["target/release/dsrm", "bench", "nn", "--threads", str(threads), "--out", out], check=True)
    rows = json.load(open(out))["results"]
    train = {r["optimizer"]: r["steps_per_second"] for r in rows if "steps_per_second" in r}
    infer = next(r["median_us"] for r in rows if r["workload"] == "mlp_infer_b1")
    return {"train_tch_adam": train["tch Adam"], "train_dsrm_adam": train["dsrm Adam (checkpointable)"], "infer_median_us": infer}


def main() -> None:
    import torch

    if torch.__version__.split("+")[0] != "2.13.0":
        sys.exit(f"PyTorch {torch.__version__}; the comparison needs torch==2.13.0, the version dsrm links")
    print("| threads | PyTorch train steps/s | dsrm train steps/s (tch Adam / dsrm Adam) | ratio | PyTorch batch-1 µs | dsrm batch-1 µs | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for n in THREADS:
        p, d = pytorch(n), dsrm(n)
        print(
            f"| {n} | {p['train_steps_per_second']:.0f} | {d['train_tch_adam']:.0f} / {d['train_dsrm_adam']:.0f} | "
            f"{d['train_dsrm_adam'] / p['train_steps_per_second']:.2f}x | {p['infer_median_us']:.1f} | "
            f"{d['infer_median_us']:.1f} | {p['infer_median_us'] / d['infer_median_us']:.2f}x |"
        )


if __name__ == "__main__":
    main()
