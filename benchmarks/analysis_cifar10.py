"""Time stage 1 (load + situation analysis) on the 60,000-image CIFAR-10 JPEG archive.

Usage:  .venv/bin/python benchmarks/analysis_cifar10.py [--archive ../shared/datasets/cifar10-jpeg.tar.gz]

Runs ``mlestar run --only situation_analysis`` twice in fresh processes with an
empty decoded-image cache and the workflow cache off (``--no-cache``): the
first decodes every JPEG (cold), the second reads the decoded-image cache (warm). Prints the stage's wall time, the decode time and the
analysis steps of each, and the warm/cold ratio. Target: at most 30 s for the
whole analysis; a cached load of all 60,000 images under 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"


def run_stage1(config: Path, runs_dir: Path, env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mlestar", "run", str(config), "--only", "situation_analysis",
                    "--runs-dir", str(runs_dir), "--no-cache"], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    run_dir = max((p for p in runs_dir.iterdir() if (p / "run.json").exists()), key=lambda p: p.stat().st_mtime)
    state = json.loads((run_dir / "run.json").read_text())
    analysis = json.loads((run_dir / "01_situation_analysis" / "analysis.json").read_text())
    return wall, {"stage_s": state["stages"]["situation_analysis"]["duration"],
                  "source": analysis["load"]["source"], "steps": analysis["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        config = tmp_path / "c.yaml"
        config.write_text(f"project: {{name: cifar-analysis}}\n"
                          f"data: {{source: imagefolder, path: {args.archive}}}\n")
        env = {**os.environ, "MLESTAR_CACHE_DIR": str(tmp_path / "cache")}
        for label in ("cold (decode every JPEG)", "warm (decoded-image cache)"):
            wall, info = run_stage1(config, tmp_path / "runs", env)
            steps = ", ".join(f"{k} {v:.2f}s" for k, v in info["steps"].items())
            load = info["source"].get("load_seconds")
            print(f"{label}: stage 1 {info['stage_s']:.1f}s (process {wall:.1f}s); cache "
                  f"{info['source'].get('cache')}, load {load if load is None else round(load, 2)}s; "
                  f"analysis steps: {steps}")
            if label.startswith("cold"):
                cold = info["stage_s"]
        print(f"ratio warm/cold stage time: {info['stage_s'] / cold:.2f}")


if __name__ == "__main__":
    main()
