"""Reading a `dsrm` run directory's results from Python (no PyTorch needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The results of a `dsrm train` / `dsrm eval` run, or of an experiment (`results.json`).

    Keys present when their file is: `metrics` (metrics.json: mode -> metric -> value), `summary`
    (summary.json), `log` (log.jsonl, one dict per epoch), `timing` (timing.jsonl), `provenance`
    (provenance.json), `results` (an experiment's results.json), `code_version`, `config_toml` (the text)."""
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: not a run directory")
    out: dict[str, Any] = {}
    for key, name in [("metrics", "metrics.json"), ("summary", "summary.json"), ("provenance", "provenance.json"),
                      ("results", "results.json")]:
        if (d / name).exists():
            out[key] = json.loads((d / name).read_text())
    for key, name in [("log", "log.jsonl"), ("timing", "timing.jsonl")]:
        if (d / name).exists():
            out[key] = _json_lines(d / name)
    if (d / "code_version").exists():
        out["code_version"] = (d / "code_version").read_text().strip()
    if (d / "config.toml").exists():
        out["config_toml"] = (d / "config.toml").read_text()
    if not out:
        raise FileNotFoundError(f"{d}: no metrics.json, results.json or log.jsonl")
    return out
