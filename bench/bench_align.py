"""Seconds per training step of ``vlmbench align``, per method, on a tiny random VLM on CPU.

Builds a tiny random-weight model offline (vlmbench.testing.tiny_models), runs ``vlmbench align`` through
its command line for each method on the built-in data (``--no_eval``), and reads the training time
from each run's model card. The RL methods sample ``--num-generations`` responses of
``--max-completion-length`` tokens per prompt and are rewarded by the default judge (rules).

    OMP_NUM_THREADS=1 python bench/bench_align.py [--arch llava] [--steps 10] [--methods grpo,rloo,sft,dpo] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def run(method: str, model: Path, out: Path, args: argparse.Namespace) -> dict[str, float]:
    """One ``vlmbench align`` run; its seconds per step and the command's wall time."""
    from vlmbench.cli import main

    flags = ["align", "--method", method, "--model_args", f"pretrained={model}", "--output_dir", str(out), "--no_eval"]
    flags += ["--max_steps", str(args.steps), "--save_steps", str(args.steps * 10), "--batch_size", str(args.batch_size)]
    if method in ("grpo", "rloo"):
        flags += ["--num_generations", str(args.num_generations), "--max_completion_length", str(args.max_completion_length)]
    started = time.perf_counter()
    code = main(flags)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"vlmbench align --method {method} exited {code}")
    training = json.loads((out / "model_card.json").read_text())["training"]
    return {"seconds_per_step": float(training["seconds_per_step"]), "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="llava", help="tiny model architecture: llava, idefics3, gemma3")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--methods", default="grpo,rloo,sft,dpo")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, dest="batch_size")
    parser.add_argument("--num-generations", type=int, default=2, dest="num_generations")
    parser.add_argument("--max-completion-length", type=int, default=16, dest="max_completion_length")
    args = parser.parse_args()

    import torch

    from vlmbench.testing.tiny_models import build_tiny_vlm

    with tempfile.TemporaryDirectory(prefix="bench-align-") as tmp:
        root = Path(tmp)
        model = build_tiny_vlm(args.arch, root / args.arch)
        rows = []
        for method in args.methods.split(","):
            results = [run(method, model, root / f"{method}-{i}", args) for i in range(args.repeats)]
            per_step = statistics.median(r["seconds_per_step"] for r in results)
            wall = statistics.median(r["wall"] for r in results)
            rows.append((method, per_step, wall))
    print(
        f"\n{platform.system()} {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    print(f"tiny {args.arch}, {args.steps} steps, batch {args.batch_size}; grpo/rloo: {args.num_generations} x {args.max_completion_length} tokens")
    print(f"| method | s/step (median of {args.repeats}) | command wall s |")
    print("|---|---|---|")
    for method, per_step, wall in rows:
        print(f"| {method} | {per_step:.3f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
