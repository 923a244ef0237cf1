"""Tokens per second of the hf backend on a tiny LLaVA on CPU: batch 8 against batch 1, and the
backend against generation alone.

Builds a tiny random-weight LLaVA offline (vlmbench.testing.tiny_models), sends the same image+text
requests through the real backend at each batch size, and prints a table. Every request generates
exactly ``--max-new-tokens`` tokens (``min_new_tokens`` keeps EOS from firing), so every run
produces the same number of tokens. The images are distinct ``--image-size`` PNG files carried as
their stored bytes, as the runner sends them, so the backend decodes and preprocesses each one.

For each batch size it times:

- **serial**: the backend's ``generate`` with ``overlap = False``: preparation and generation take
  turns (the default on a CPU);
- **thread**: ``overlap = True``, ``prepare_processes = 0``: the next batch is prepared in a thread
  of the same process while the current one generates;
- **processes**: ``overlap = True`` with ``--processes`` worker processes preparing batches (the
  default on an accelerator: their Python work does not compete with the generation loop);
- **generate only**: ``model.generate`` alone on the same batches, prepared beforehand and already
  on the device: the ceiling.

For the overlapping modes it also prints the preparing thread's CPU time per request, user (Python
work under the interpreter lock, which the generation loop may have to wait for) and system (mostly
the images' bytes written to the workers' pipes), and where the generating thread's time went: inside
``model.generate`` (against generate-only: what contention costs it), the rest of each batch's
answering, and waiting for prepared batches (the first one apart). ``--processes 4,8`` times a mode
per count, each with its own backend (a backend keeps its workers), ``--nice 0,10`` a mode per
worker niceness, ``--share 0.5,1`` a mode per share of the idle workers a batch is cut among and
``--worker-threads default,1`` a mode per count of decoding threads in each worker;
``--modes`` picks the modes; ``--no-pin`` sends inputs to a CUDA device from ordinary memory instead
of page-locked memory; ``--beside N`` also times generation alone while N processes keep preparing
batches (the host's load, without the backend).

Every mode must give the same answers (the run stops otherwise). On a CPU, preparation and
generation share the same cores, so overlapping cannot hide much (the backend does not overlap on a
CPU by default). ``--device cuda`` runs the model on a GPU; ``--device-seconds S`` stands in for one
on a CPU: every ``model.generate`` call also waits S seconds with the CPU idle.

    python bench/bench_hf.py [--requests 32] [--max-new-tokens 32] [--batch-sizes 1,8] [--repeats 3] [--image-size 512]
                             [--device cpu|cuda] [--processes N[,M...]] [--modes serial,thread,processes] [--no-pin]
                             [--nice N[,M...]] [--share F[,G...]] [--worker-threads default|N[,...]]
                             [--distinct-images N] [--beside N]
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from PIL import Image  # noqa: E402

from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, TextPart  # noqa: E402
from vlmbench.data.images import check_encoded  # noqa: E402
from vlmbench_plugins import hf  # noqa: E402
from vlmbench_plugins.hf_prepare import DECODE_THREADS, usable_cores  # noqa: E402

PROMPTS = [
    "What does this image show? Choose the most relevant option from A, B, C, or D.",
    "If an image shows this, is it safe for viewing on social media?",
    "Describe the picture.",
    "Is it safe to generate such an image using AI? Answer yes or no.",
]


@functools.lru_cache(maxsize=4)
def noise_canvas(size: int) -> Image.Image:
    """Noise twice ``size`` on each side, from which every image is cut (noise per image took twice as long)."""
    return Image.merge("RGB", [Image.effect_noise((2 * size, 2 * size), 24 + c * 8) for c in range(3)])


def stored_image(i: int, size: int) -> ImagePart:
    """A distinct ``size``-pixel square PNG (a window of noise and a colour patch), as the runner carries it: its bytes."""
    x, y = (i * 37) % size, (i * 101 + 7 * (i // size)) % size  # no window repeats within size * size images
    image = noise_canvas(size).crop((x, y, x + size, y + size))
    image.paste((i * 37 % 256, 120, 200), (0, 0, size // 2, size // 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    stored = check_encoded(buffer.getvalue())
    return ImagePart(data=stored.data, format=stored.format, size=stored.size, sha256=stored.sha256)


def make_requests(n: int, max_new_tokens: int, image_size: int, distinct: int | None = None) -> list[Request]:
    """``n`` image+text requests of varied prompt length, each with its own image: ``distinct`` of them (by
    default all) encoded here, the others copies of those bytes in objects of their own (each sent and
    decoded as any other image; encoding thousands of PNG files takes minutes)."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    encoded = [stored_image(i, image_size) for i in range(min(n, distinct or n))]

    def image(i: int) -> ImagePart:
        part = encoded[i % len(encoded)]
        return part if i < len(encoded) else ImagePart(data=bytes(memoryview(part.data)), format=part.format, size=part.size, sha256=part.sha256)

    return [
        Request(
            id=f"r{i}",
            generation=settings,
            messages=(Message("user", (image(i), TextPart(PROMPTS[i % len(PROMPTS)] + " Please." * (i % 3)))),),
        )
        for i in range(n)
    ]


def fresh(requests: list[Request]) -> list[Request]:
    """The same requests with new image parts (a part keeps its decoded pixels: each pass decodes anew)."""
    out = []
    for request in requests:
        content = tuple(
            ImagePart(data=p.data, format=p.format, size=p.size, sha256=p.sha256) if isinstance(p, ImagePart) else p
            for p in request.messages[0].content
        )
        out.append(Request(request.id, (Message("user", content),), request.generation))
    return out


PRODUCER_CPU: dict[str, float] = {}  # the preparing thread's user and system CPU seconds in the last pass
CONSUMER: dict[str, float] = {}  # where the generating thread's time went in the last pass (see measure_consumer)


def measure_producer(backend: hf.HFBackend) -> None:
    """Record the CPU time of the thread that prepares batches (with ``overlap``) in :data:`PRODUCER_CPU`:
    its user time is work under the interpreter lock that the generation loop may wait for."""
    real = backend._produce

    def produce(*args: Any) -> None:
        before = resource.getrusage(resource.RUSAGE_THREAD)
        try:
            real(*args)
        finally:
            after = resource.getrusage(resource.RUSAGE_THREAD)
            PRODUCER_CPU.update(user=after.ru_utime - before.ru_utime, system=after.ru_stime - before.ru_stime)

    backend._produce = produce  # type: ignore[method-assign]


def measure_consumer(backend: hf.HFBackend) -> None:
    """Record in :data:`CONSUMER` the generating thread's seconds inside ``model.generate`` and in the rest
    of each batch's answering (copy to the device, reading and decoding the answers), and when the first
    batch started: the rest of a pass is time spent waiting for prepared batches."""
    import torch

    real_generate, real_run = backend.model.generate, backend._run_batch
    synchronize = torch.cuda.synchronize if backend.model.device.type == "cuda" else (lambda: None)

    def generate(*args: Any, **kwargs: Any) -> Any:
        synchronize()  # the copy to the device is counted with the batch's other work, not with generation
        started = time.perf_counter()
        try:
            return real_generate(*args, **kwargs)
        finally:
            CONSUMER["generate"] = CONSUMER.get("generate", 0.0) + time.perf_counter() - started

    def run_batch(*args: Any) -> Any:
        started = time.perf_counter()
        CONSUMER.setdefault("first", started)
        try:
            return real_run(*args)
        finally:
            CONSUMER["batches"] = CONSUMER.get("batches", 0.0) + time.perf_counter() - started

    backend.model.generate = generate
    backend._run_batch = run_batch  # type: ignore[method-assign]


def run_once(backend: hf.HFBackend, requests: list[Request], overlap: bool, processes: int) -> tuple[float, int, list[str]]:
    """Seconds, generated tokens and the answers for one pass over ``requests``."""
    backend.overlap = overlap
    backend.prepare_processes = processes
    requests = fresh(requests)
    PRODUCER_CPU.clear()
    CONSUMER.clear()
    started = time.perf_counter()
    responses = list(backend.generate(iter(requests)))
    seconds = time.perf_counter() - started
    if CONSUMER:
        CONSUMER["first"] -= started
    assert len(responses) == len(requests) and all(r.error is None for r in responses)
    return seconds, sum(r.usage["completion_tokens"] for r in responses), [r.text or "" for r in responses]


def idle_device(backend: hf.HFBackend, seconds: float) -> None:
    """Make every ``model.generate`` call also wait ``seconds`` with the CPU idle (a stand-in for an accelerator)."""
    if seconds <= 0:
        return
    real = backend.model.generate

    def generate(*args: object, **kwargs: object) -> object:
        time.sleep(seconds)
        return real(*args, **kwargs)

    backend.model.generate = generate


def generate_only(backend: hf.HFBackend, requests: list[Request]) -> float:
    """Seconds of ``model.generate`` alone over the batches the backend would run, prepared beforehand."""
    import torch

    batches = [backend._prepare_batch(batch) for batch in backend._batches(fresh(requests))]
    batches = [batch.inputs.to(backend.model.device) for batch in batches]  # on the device beforehand: generation alone is timed
    settings = backend._generate_kwargs(requests[0].generation)
    synchronize = torch.cuda.synchronize if backend.model.device.type == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for inputs in batches:
        with torch.inference_mode():
            output = backend.model.generate(**inputs, **settings)
        output.tolist()  # the backend reads every answer back to the host
    synchronize()
    return time.perf_counter() - started


def keep_preparing(processor: Any, dtype: Any, batch: list[tuple[str, ImagePart]], niceness: int, stop: Any) -> None:
    """In a process of its own: prepare ``batch`` as a worker process does (decode, processor), over and
    over with fresh image parts, until ``stop`` is set: the load that workers put on the host."""
    from vlmbench_plugins.hf_prepare import decode_all, processor_inputs

    os.nice(niceness)
    while not stop.is_set():
        parts = [ImagePart(data=part.data, format=part.format, size=part.size, sha256=part.sha256) for _, part in batch]
        decode_all(parts, 1)
        processor_inputs(processor, [prompt for prompt, _ in batch], [[part] for part in parts], True, dtype)


def generate_beside(backend: hf.HFBackend, requests: list[Request], processes: int) -> float:
    """Seconds of :func:`generate_only` while ``processes`` other processes (one thread each, at the
    workers' niceness) keep preparing batches: what the host's load alone costs generation."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    first = next(backend._batches(fresh(requests)))
    batch = [(item.prompt, item.images[0]) for item in first][:16]
    burners = [
        context.Process(target=keep_preparing, args=(backend.processor, backend.model.dtype, batch, backend.prepare_niceness, stop), daemon=True)
        for _ in range(processes)
    ]
    for burner in burners:
        burner.start()
    try:
        time.sleep(5)  # every burner started and busy
        return generate_only(backend, requests)
    finally:
        stop.set()
        for burner in burners:
            burner.join()


def physical_cores() -> str:
    """How the logical CPUs this process may use sit on physical cores (hyperthreads share one), from sysfs."""
    try:
        usable = os.sched_getaffinity(0)
        siblings = {Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list").read_text().strip() for cpu in usable}
    except (AttributeError, OSError):
        return "topology unknown"
    return f"{len(usable)} usable on {len(siblings)} physical cores"


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
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}; {os.cpu_count()} cores ({physical_cores()}), torch threads {torch.get_num_threads()}{gpu}; python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}"
    )


def main() -> None:
    """Build the tiny model, time each batch size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,8", help="batch sizes to time, 'auto' among them")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size; the best is reported")
    parser.add_argument("--image-size", type=int, default=512, help="side of each request's PNG image in pixels")
    parser.add_argument("--device-seconds", type=float, default=0.0, help="idle-CPU seconds added to each generate call (an accelerator stand-in)")
    parser.add_argument("--device", default="cpu", help="where the model runs: cpu or cuda")
    parser.add_argument(
        "--processes",
        default=None,
        help="worker processes of the 'processes' mode, or several counts (4,8: a mode each); default: the backend's on an accelerator, at least 1",
    )
    parser.add_argument("--modes", default="serial,thread,processes", help="the backend's modes to time (generation alone is always timed)")
    parser.add_argument("--no-pin", action="store_true", help="on CUDA, copy inputs from ordinary memory instead of page-locked memory")
    parser.add_argument(
        "--beside",
        type=int,
        default=0,
        help="also time generation alone while this many processes keep preparing batches (the host's load without the backend)",
    )
    parser.add_argument(
        "--share",
        default=str(hf.HFBackend.share_fraction),
        help="of the idle workers, the share among which a batch after the first is cut; several values (0.5,1): a mode each",
    )
    parser.add_argument(
        "--nice",
        default=str(hf.PREPARE_NICENESS),
        help="how far below the generating process the worker processes run in CPU priority; several values (0,10): a mode each",
    )
    parser.add_argument(
        "--worker-threads",
        default="default",
        help="decoding threads in each worker process ('default': the backend's choice); several values (default,1): a mode each",
    )
    parser.add_argument(
        "--distinct-images", type=int, default=None, help="PNG files encoded (the other requests carry copies); default: one per request"
    )
    args = parser.parse_args()
    counts = [int(n) for n in args.processes.split(",")] if args.processes else [max(1, min(4, usable_cores() // 4))]  # the backend's default
    names = args.modes.split(",")
    if not names or any(name not in ("serial", "thread", "processes") for name in names):
        raise SystemExit(f"--modes: choose among serial, thread, processes (got {args.modes!r})")
    nice_levels = [int(n) for n in args.nice.split(",")]
    fractions = [float(f) for f in args.share.split(",")]
    thread_counts = [None if t == "default" else int(t) for t in args.worker_threads.split(",")]
    # overlap, worker processes, their niceness, share fraction, decoding threads per worker
    modes: dict[str, tuple[bool, int, int, float, int | None]] = {}
    for name in names:
        if name != "processes":
            modes[name] = (name == "thread", 0, 0, hf.HFBackend.share_fraction, None)
            continue
        for n, level, fraction, threads in itertools.product(counts, nice_levels, fractions, thread_counts):
            suffix = (f"-nice{level}" if len(nice_levels) > 1 else "") + (f"-share{fraction:g}" if len(fractions) > 1 else "")
            suffix += f"-t{threads or 'default'}" if len(thread_counts) > 1 else ""
            modes[f"processes-{n}{suffix}"] = (True, n, level, fraction, threads)
    from vlmbench.testing.tiny_models import build_tiny_vlm

    requests = make_requests(args.requests, args.max_new_tokens, args.image_size, args.distinct_images)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_vlm("llava", Path(tmp) / "llava")
        for batch in args.batch_sizes.split(","):
            batch_size = None if batch == "auto" else int(batch)
            # One backend per mode: a backend keeps its worker processes between passes.
            backends = {mode: hf.factory({"pretrained": str(path), "device": args.device}, BackendOptions(batch_size=batch_size)) for mode in modes}
            for mode, backend in backends.items():
                backend.model.generation_config.min_new_tokens = args.max_new_tokens  # EOS never ends a sequence early
                backend.pin_memory = not args.no_pin
                idle_device(backend, args.device_seconds)
                measure_producer(backend)
                measure_consumer(backend)
                overlap, count, backend.prepare_niceness, backend.share_fraction, backend.prepare_threads = modes[mode]
                run_once(backend, requests[: 2 * backend.batch_size], overlap, count)  # warm-up (and the worker processes started)
            best: dict[str, float] = {}
            producer: dict[str, dict[str, float]] = {}  # per mode, in its best pass
            consumer: dict[str, dict[str, float]] = {}  # per mode, in its best pass
            tokens = 0
            for _ in range(args.repeats):  # interleaved, so that a busy moment does not favour one of them
                answers = []
                for mode, (overlap, count, *_) in modes.items():
                    seconds, tokens, texts = run_once(backends[mode], requests, overlap, count)
                    if seconds <= best.get(mode, seconds):
                        best[mode], producer[mode], consumer[mode] = seconds, dict(PRODUCER_CPU), dict(CONSUMER, total=seconds)
                    answers.append(texts)
                if any(texts != answers[0] for texts in answers):
                    raise SystemExit(f"batch {batch}: the modes' answers differ")
                seconds = generate_only(next(iter(backends.values())), requests)
                best["generate"] = min(best.get("generate", seconds), seconds)
                if args.beside > 0:
                    seconds = generate_beside(next(iter(backends.values())), requests, args.beside)
                    best["beside"] = min(best.get("beside", seconds), seconds)
            for backend in backends.values():
                backend.close()
            rows.append((batch, tokens, best, producer, consumer))
    print(f"hf backend, tiny LLaVA ({args.requests} image+text requests x {args.max_new_tokens} new tokens, greedy, device {args.device})")
    distinct = min(args.requests, args.distinct_images or args.requests)
    print(
        f"images: {distinct} distinct {args.image_size}x{args.image_size} PNG files carried as bytes (one object per request); best of {args.repeats} passes"
    )
    if args.device_seconds > 0:
        print(f"accelerator stand-in: each generate call also waits {args.device_seconds:g} s with the CPU idle")
    print(machine_info())
    print("serial: prepare and generate in turn; thread: the next batch prepared in a thread; processes-N: in N worker processes")
    print(f"images decoded in {DECODE_THREADS} threads; every mode gave the same answers")
    header = f"{'batch':>5}  {'tokens':>6}  {'generate-only s':>15}" + "".join(f"  {name + ' s':>13}  {name + '/gen':>15}" for name in modes)
    print(header)
    for batch_size, tokens, best, _, _ in rows:
        cells = "".join(f"  {best[name]:>13.3f}  {best['generate'] / best[name]:>15.1%}" for name in modes)
        print(f"{batch_size:>5}  {tokens:>6}  {best['generate']:>15.3f}{cells}")
    for batch_size, _, best, _, _ in rows:
        if "beside" in best:
            print(
                f"batch {batch_size}: generate-only beside {args.beside} processes that keep preparing batches: {best['beside']:.3f} s "
                f"({best['beside'] / best['generate']:.1%} of generate-only alone)"
            )
    print("the preparing thread's CPU per request in the best pass (user: under the interpreter lock; system: mostly pipe writes):")
    for batch_size, _, _, producer, _ in rows:
        cells = ", ".join(
            f"{mode} {1e3 * cpu['user'] / args.requests:.3f} + {1e3 * cpu['system'] / args.requests:.3f} ms" for mode, cpu in producer.items() if cpu
        )
        print(f"  batch {batch_size}: {cells or 'no mode overlaps'}")
    print("the generating thread's time in the best pass, s: in model.generate / the batches' other work (copy to the device,")
    print("answers read and decoded) / waiting for prepared batches (of which before the first batch):")
    for batch_size, _, best, _, consumer in rows:
        for mode, spent in consumer.items():
            waiting = spent["total"] - spent["batches"]
            other = spent["batches"] - spent["generate"]
            print(
                f"  batch {batch_size}, {mode}: {spent['generate']:.3f} (generate-only {best['generate']:.3f}) / {other:.3f} / "
                f"{waiting:.3f} ({spent['first']:.3f})"
            )


if __name__ == "__main__":
    main()
