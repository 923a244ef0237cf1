"""Throughput of the ``openai`` backend against the fault server with a fixed latency.

Starts ``vlmbench.testing.fault_server`` in a subprocess (latency L), sends N requests with
concurrency cap C and compares the throughput with the ideal C/L and with a sequential loop (one
request at a time through the synchronous ``openai`` client, as the reference implementation
does). The server confirms that no request it answered was sent twice. A bare asyncio HTTP/1.1
client with the same concurrency shows what the server and machine allow without any client
library, and longer latencies show how the fixed per-request cost of the client stack fades.

The image run sends distinct images (``--images`` PNG files of ``--image_size`` pixels square,
generated with Pillow), each read when its request is drawn from the lazy stream, as the runner
does: its bytes checked (header and structure) and carried as they are stored, so the backend sends
each file as its data URL without decoding it. (On a tree from before images travelled as bytes,
each image is decoded instead and the backend re-encodes it as PNG, as the runner did then.)

The rate-limit run (``--capacity``) points a client asking for ``--capacity_client`` concurrent
requests at a server that serves ``--capacity`` at a time and answers the rest with an immediate
429 and ``Retry-After: --retry_after``; it reports the share of the server's capacity used
(capacity/L req/s is the ideal), the 429s per answer and the longest time the server received nothing.

    python bench/bench_api.py [--n 1024] [--concurrency 16] [--latency 0.2] [--images 400] [--more_latencies 0.5,1.0]
                              [--capacity 8 --capacity_client 32 --retry_after 1 --capacity_n 400]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tabulate import tabulate

from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, TextPart

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def fault_server(latency: float, extra: Sequence[str] = ()) -> Iterator[str]:
    """Run the fault server in a subprocess; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vlmbench.testing.fault_server", "--latency", str(latency), *extra], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_call(base_url: str, path: str, method: str = "GET") -> dict[str, Any]:
    """GET /stats or POST /reset on the fault server."""
    root = base_url.removesuffix("/v1")
    request = urllib.request.Request(root + path, data=b"{}" if method == "POST" else None, method=method)
    with urllib.request.urlopen(request, timeout=10) as reply:
        data: dict[str, Any] = json.loads(reply.read())
    return data


SETTINGS = GenerationSettings(max_new_tokens=8, seed=0)


def make_requests(n: int, tag: str) -> list[Request]:
    """N distinct one-turn text requests (distinct text, so the server counts each one)."""
    return [Request(f"{tag}-{i}", (Message("user", (TextPart(f"{tag} question {i}: is it safe?"),)),), SETTINGS) for i in range(n)]


def make_images(folder: Path, count: int, size: int) -> list[Path]:
    """COUNT distinct SIZE x SIZE PNG files: a gradient, noise and shapes that differ per image (about as
    hard to compress as a photograph, so encoding costs what a real image costs)."""
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    ramp = Image.linear_gradient("L").resize((size, size))
    paths: list[Path] = []
    for i in range(count):
        shift = [rng.randrange(256) for _ in range(3)]
        channels = (
            ramp.point(lambda v, s=shift[0]: (v + s) % 256),
            ramp.rotate(90).point(lambda v, s=shift[1]: (v + s) % 256),
            Image.effect_noise((size, size), 32).point(lambda v, s=shift[2]: (v + s) % 256),
        )
        image = Image.merge("RGB", channels)
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x, y, r = rng.randrange(size), rng.randrange(size), rng.randrange(8, size // 4)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
        draw.text((8, 8), f"image {i}", fill=(255, 255, 255))
        paths.append(folder / f"image-{i:04d}.png")
        image.save(paths[-1], compress_level=1)
    return paths


def image_requests(paths: Sequence[Path], tag: str) -> Iterator[Request]:
    """One request per image file, the image read when the request is drawn, as the runner does: its
    stored bytes, checked without decoding (or, on a tree from before that, decoded)."""
    from PIL import Image

    try:
        from vlmbench.data.images import check_encoded
    except ImportError:  # before images travelled as bytes: the runner decoded each one
        check_encoded = None
    for i, path in enumerate(paths):
        if check_encoded is not None:
            stored = check_encoded(path.read_bytes())
            part = ImagePart(data=stored.data, format=stored.format, size=stored.size, sha256=stored.sha256, faithful=stored.faithful)
        else:
            with Image.open(path) as file:
                part = ImagePart(file.convert("RGB"))
        yield Request(f"{tag}-{i}", (Message("user", (part, TextPart(f"{tag} question {i}: is it safe?"))),), SETTINGS)


def run_backend(base_url: str, requests: Iterable[Request], concurrency: int, fresh_limiter: bool = False) -> tuple[float, int]:
    """Seconds for the backend to answer all requests, drawn from a lazy stream as the runner sends them; errors.
    ``fresh_limiter``: forget what the warm-up taught the concurrency limiter (a run that starts cold)."""
    from vlmbench.pluginmanager import backend_spec

    backend = backend_spec("openai").factory({"base_url": base_url, "model": "tiny", "num_concurrent": str(concurrency)}, BackendOptions())
    try:
        list(backend.generate(make_requests(concurrency, "warmup")))  # warm up: connections, client platform probe
        if fresh_limiter:
            backend._limiter = None  # type: ignore[attr-defined]
        server_call(base_url, "/reset", "POST")
        started = time.perf_counter()
        errors = sum(r.error is not None for r in backend.generate(iter(requests)))
        return time.perf_counter() - started, errors
    finally:
        backend.close()


def run_capacity(args: argparse.Namespace) -> list[Any]:
    """The rate-limit run: a client asking for more than the server serves. One table row."""
    extra = ["--capacity", str(args.capacity), "--retry_after", str(args.retry_after)]
    with fault_server(args.latency, extra) as url:
        seconds, errors = run_backend(url, make_requests(args.capacity_n, "capacity"), args.capacity_client, fresh_limiter=True)
        stats = server_call(url, "/stats")
        events = sorted(server_call(url, "/events"), key=lambda e: e["arrived"])
    answers = stats["succeeded"]
    refused = stats["outcomes"].get("429", 0)
    per_content: dict[str, int] = {}
    for event in events:
        per_content[event["key"]] = per_content.get(event["key"], 0) + (event["outcome"] == "429")
    gaps = [b["arrived"] - a["arrived"] for a, b in itertools.pairwise(events)]
    ideal = args.capacity / args.latency
    return [
        f"{args.capacity_client} asked, server serves {args.capacity}, Retry-After {args.retry_after:g}",
        args.latency,
        args.capacity_n,
        f"{seconds:.2f}",
        f"{args.capacity_n / seconds:.1f}",
        f"{args.capacity_n / seconds / ideal:.1%} of capacity/L",
        errors,
        stats["max_serving"],
        stats["requests"],
        f"429s: {refused} ({refused / max(1, answers):.3f}/answer, at most {max(per_content.values(), default=0)}); longest silence {max(gaps, default=0):.2f} s",
    ]


def run_sequential(base_url: str, requests: list[Request]) -> float:
    """Seconds for a plain loop over the synchronous client, one request at a time."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="EMPTY", max_retries=6)
    client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "warm up"}], max_tokens=8)
    server_call(base_url, "/reset", "POST")
    started = time.perf_counter()
    for request in requests:
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": request.messages[0].text}], max_tokens=8, temperature=0, seed=0
        )
    client.close()
    return time.perf_counter() - started


def run_raw(base_url: str, n: int, concurrency: int) -> float:
    """Seconds for a minimal asyncio client (one keep-alive connection per slot, no library)."""
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])

    async def worker(ids: range) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in ids:
            body = json.dumps({"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": f"raw {i}"}]}).encode()
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            json.loads(await reader.readexactly(length))
        writer.close()

    async def main() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(worker(range(k, n, concurrency)) for k in range(concurrency)))
        return time.perf_counter() - started

    return asyncio.run(main())


def machine() -> str:
    """One line about where this ran."""
    import openai

    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"openai {openai.__version__}, {platform.processor() or platform.machine()}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="requests per run at --latency")
    parser.add_argument("--concurrency", type=int, default=16, help="num_concurrent (C)")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request in seconds (L)")
    parser.add_argument("--sequential_n", type=int, default=40, help="requests for the sequential loop (its rate is extrapolated)")
    parser.add_argument("--more_latencies", default="0.5,1.0", help="further latencies for the backend alone ('' for none)")
    parser.add_argument("--more_n", type=int, default=320, help="requests per run at the further latencies")
    parser.add_argument("--images", type=int, default=400, help="distinct images (one request each) for the image run")
    parser.add_argument("--image_size", type=int, default=512, help="side of each image in pixels")
    parser.add_argument("--capacity", type=int, default=8, help="requests the rate-limited server serves at once (0: no such run)")
    parser.add_argument("--capacity_client", type=int, default=32, help="num_concurrent the client asks for in the rate-limit run")
    parser.add_argument("--retry_after", type=float, default=1.0, help="Retry-After of the rate-limited server's 429s")
    parser.add_argument("--capacity_n", type=int, default=400, help="requests in the rate-limit run")
    parser.add_argument("--only", default="", help="comma-separated runs to do: text,images,raw,sequential,more,capacity (default: all)")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    n, c, latency = args.n, args.concurrency, args.latency
    rows: list[list[Any]] = []

    def row(label: str, lat: float, sent: int, seconds: float, errors: int, url: str) -> None:
        stats = server_call(url, "/stats")
        rows.append(
            [
                label,
                lat,
                sent,
                f"{seconds:.2f}",
                f"{sent / seconds:.1f}",
                f"{sent / seconds / (c / lat):.1%}",
                errors,
                stats["max_in_flight"],
                stats["requests"],
                stats["resent_after_success"],
            ]
        )

    sequential_rate = None
    png_kib = made = 0.0
    with fault_server(latency) as url, tempfile.TemporaryDirectory() as folder:
        if wanted("text"):
            seconds, errors = run_backend(url, make_requests(n, "text"), c)
            row("backend, text, lazy stream", latency, n, seconds, errors, url)
        if wanted("images"):
            started = time.perf_counter()
            paths = make_images(Path(folder), args.images, args.image_size)
            made = time.perf_counter() - started
            png_kib = sum(p.stat().st_size for p in paths) / len(paths) / 1024
            seconds, errors = run_backend(url, image_requests(paths, "image"), c)
            label = f"backend, {args.images} distinct {args.image_size}x{args.image_size} PNG images, lazy stream"
            row(label, latency, args.images, seconds, errors, url)
        if wanted("raw"):
            server_call(url, "/reset", "POST")
            row("reference: bare asyncio HTTP client, no library", latency, n, run_raw(url, n, c), 0, url)
        if wanted("sequential"):
            seq_n = min(n, args.sequential_n)
            seconds = run_sequential(url, make_requests(seq_n, "seq"))
            row(f"sequential loop, sync openai client ({seq_n} requests)", latency, seq_n, seconds, 0, url)
            sequential_rate = seq_n / seconds
    if wanted("more"):
        for more in filter(None, args.more_latencies.split(",")):
            with fault_server(float(more)) as url:
                seconds, errors = run_backend(url, make_requests(args.more_n, f"more{more}"), c)
                row("backend, text, lazy stream", float(more), args.more_n, seconds, errors, url)
    capacity_row = run_capacity(args) if wanted("capacity") and args.capacity > 0 else None
    print(f"machine: {machine()}")
    print(f"fault server in a subprocess; concurrency cap C={c}; ideal = C/L (C/{latency:g} s = {c / latency:.0f} req/s)")
    if wanted("images"):
        print(
            f"images: {args.images} distinct {args.image_size}x{args.image_size} PNG files, {png_kib:.0f} KiB each on average (generated in {made:.1f} s)"
        )
    print()
    headers = ["run", "L (s)", "requests", "seconds", "req/s", "of C/L", "errors", "server max in flight", "server requests", "resent after success"]
    if rows:
        print(tabulate(rows, headers=headers))
    if capacity_row is not None:
        print()
        print(tabulate([capacity_row], headers=[*headers[:5], "of ideal", "errors", "server max served", "server requests", "rate limits"]))
    if wanted("text") and sequential_rate:
        stream_rate = float(rows[0][4])
        print(
            f"\nbackend (lazy stream) vs sequential loop at L={latency} s: {stream_rate / sequential_rate:.1f}x "
            f"({n} requests: {n / stream_rate:.1f} s instead of {n / sequential_rate:.1f} s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
