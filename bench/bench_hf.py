"""Tokens per second of the hf backend, batch 8 against batch 1, on a tiny LLaVA on CPU.

Builds a tiny random-weight LLaVA offline (tests/tiny_models.py), sends the same image+text
requests through the real backend at each batch size, and prints a table. Every request generates
exactly ``--max-new-tokens`` tokens (``min_new_tokens`` keeps EOS from firing), so both runs
produce the same number of tokens.

    python bench/bench_hf.py [--requests 32] [--max-new-tokens 32] [--batch-sizes 1,8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from PIL import Image  # noqa: E402

from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, TextPart  # noqa: E402
from vlmbench_plugins import hf  # noqa: E402

PROMPTS = [
    "What does this image show? Choose the most relevant option from A, B, C, or D.",
    "If an image shows this, is it safe for viewing on social media?",
    "Describe the picture.",
    "Is it safe to generate such an image using AI? Answer yes or no.",
]


def make_requests(n: int, max_new_tokens: int) -> list[Request]:
    """``n`` image+text requests of varied prompt length and image size."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [
        Request(
            id=f"r{i}",
            generation=settings,
            messages=(
                Message(
                    "user",
                    (
                        ImagePart(Image.new("RGB", (48 + i % 5 * 16, 40 + i % 3 * 8), (i * 37 % 256, 120, 200))),
                        TextPart(PROMPTS[i % len(PROMPTS)] + " Please." * (i % 3)),
                    ),
                ),
            ),
        )
        for i in range(n)
    ]


def run_once(backend: hf.HFBackend, requests: list[Request]) -> tuple[float, int]:
    """Seconds and generated tokens for one pass over ``requests``."""
    started = time.perf_counter()
    responses = list(backend.generate(requests))
    seconds = time.perf_counter() - started
    assert len(responses) == len(requests) and all(r.error is None for r in responses)
    return seconds, sum(r.usage["completion_tokens"] for r in responses)


def machine_info() -> str:
    """One line: CPU, cores, torch threads, versions."""
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def main() -> None:
    """Build the tiny model, time each batch size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size; the best is reported")
    args = parser.parse_args()
    from vlmbench.testing.tiny_models import build_tiny_vlm

    requests = make_requests(args.requests, args.max_new_tokens)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_vlm("llava", Path(tmp) / "llava")
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            backend = hf._factory({"pretrained": str(path), "device": "cpu"}, BackendOptions(batch_size=batch_size))
            backend.model.generation_config.min_new_tokens = args.max_new_tokens  # EOS never ends a sequence early
            run_once(backend, requests[:batch_size])  # warm-up
            seconds, tokens = min(run_once(backend, requests) for _ in range(args.repeats))
            rows.append((batch_size, seconds, tokens))
    base = rows[0][2] / rows[0][1]
    print(f"hf backend, tiny LLaVA ({args.requests} image+text requests x {args.max_new_tokens} new tokens, greedy, CPU)")
    print(machine_info())
    print(f"{'batch':>5}  {'seconds':>8}  {'tokens':>6}  {'tokens/s':>9}  {'speed-up':>8}")
    for batch_size, seconds, tokens in rows:
        rate = tokens / seconds
        print(f"{batch_size:>5}  {seconds:>8.3f}  {tokens:>6}  {rate:>9.1f}  {rate / base:>7.2f}x")


if __name__ == "__main__":
    main()
