"""The same text and image requests through vlmbench, Inspect and lm-evaluation-harness, against one local server.

One fault server (``vlmbench.testing.fault_server`` in a subprocess) answers every request after a
fixed latency L and serves at most C at a time (more get an immediate 429). Each framework sends the
same requests with C concurrent connections through its own model-API layer:

- **vlmbench**: the ``openai`` backend, fed a lazy stream of requests whose images are their
  stored PNG bytes, as ``vlmbench run`` sends them (this environment);
- **Inspect** (``inspect_ai``): ``eval()`` of a task with one sample per request, ``generate()`` as
  the solver, no scorer, model ``openai-api/local/tiny``, ``max_connections=C``;
- **lm-evaluation-harness** (``lm_eval``): its ``local-chat-completions`` model's ``generate_until``
  with ``num_concurrent=C`` (images passed as its multimodal requests carry them).

Each peer runs in its own virtual environment, created under ``--peer_dir`` (default
``~/.cache/vlmbench/peers``) and installed from the package registry with pip on first use; a peer
that cannot be installed (offline, a failed build) is reported as skipped, and the others still run.

For each framework and workload the table gives the wall time of the call (the framework's own
set-up included, interpreter start-up and imports excluded) and the span the server saw from the
first request's arrival to the last reply, each as a share of the ideal rate C/L, plus what the
server counted (requests, 429s, most in service at once).

    python bench/compare_peers.py [--n_text 400] [--n_images 200] [--concurrency 16] [--latency 0.2]
                                  [--peers vlmbench,inspect,lm-eval] [--peer_dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_api import make_images, server_call  # noqa: E402

PEERS = {
    # name: (pip requirements, module whose version is reported)
    "inspect": (["inspect-ai==0.3.285", "openai"], "inspect_ai"),
    "lm-eval": (["lm-eval[api]==0.4.13", "pillow"], "lm_eval"),
}
MAX_TOKENS = 8


def prompt(i: int, kind: str) -> str:
    return f"{kind} question {i}: is it safe?"


@contextmanager
def fault_server(latency: float, capacity: int) -> Iterator[str]:
    """The fault server in a subprocess with a fixed latency and capacity; yields its base URL."""
    command = [sys.executable, "-m", "vlmbench.testing.fault_server", "--latency", str(latency), "--capacity", str(capacity)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_figures(url: str) -> dict[str, Any]:
    """What the server counted since its last reset, and the span from the first arrival to the last reply."""
    stats = server_call(url, "/stats")
    events = server_call(url, "/events")
    arrived = [e["arrived"] for e in events]
    finished = [e["finished"] for e in events if e["finished"] is not None]
    return {
        "requests": stats["requests"],
        "succeeded": stats["succeeded"],
        "rate_limited": stats["outcomes"].get("429", 0),
        "max_serving": stats["max_serving"],
        "span_s": (max(finished) - min(arrived)) if arrived and finished else None,
    }


# --- vlmbench, in this environment ------------------------------------------------------------


def run_vlmbench(url: str, kind: str, n: int, images: Sequence[Path], concurrency: int) -> dict[str, Any]:
    from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, TextPart
    from vlmbench.data.images import check_encoded
    from vlmbench.pluginmanager import backend_spec

    settings = GenerationSettings(max_new_tokens=MAX_TOKENS)

    def requests() -> Iterator[Request]:  # drawn lazily, each image read when its request is, as the runner does
        for i in range(n):
            parts: tuple[Any, ...] = (TextPart(prompt(i, kind)),)
            if kind == "image":
                stored = check_encoded(images[i % len(images)].read_bytes())
                parts = (ImagePart(data=stored.data, format=stored.format, size=stored.size, sha256=stored.sha256), *parts)
            yield Request(f"{kind}-{i}", (Message("user", parts),), settings)

    backend = backend_spec("openai").factory({"base_url": url, "model": "tiny", "num_concurrent": str(concurrency)}, BackendOptions())
    try:
        warm = [Request(f"warm-{i}", (Message("user", (TextPart("warm up"),)),), settings) for i in range(concurrency)]
        list(backend.generate(warm))
        server_call(url, "/reset", "POST")
        started = time.perf_counter()
        errors = sum(r.error is not None for r in backend.generate(requests()))
        return {"seconds": time.perf_counter() - started, "errors": errors}
    finally:
        backend.close()


# --- peers, each in its own virtual environment --------------------------------------------------

INSPECT_DRIVER = r"""
import json, os, sys, time
config = json.loads(sys.argv[1])
os.environ["LOCAL_API_KEY"] = "EMPTY"
os.environ["LOCAL_BASE_URL"] = config["url"]
from inspect_ai import Task, eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ChatMessageUser, ContentImage, ContentText, GenerateConfig
from inspect_ai.solver import generate

def samples(kind, n):
    out = []
    for i in range(n):
        text = ContentText(text=f"{kind} question {i}: is it safe?")
        content = [ContentImage(image=config["images"][i % len(config["images"])]), text] if kind == "image" else [text]
        out.append(Sample(id=f"{kind}-{i}", input=[ChatMessageUser(content=content)]))
    return out

def run(kind, n, log_dir):
    task = Task(dataset=samples(kind, n), solver=generate(), config=GenerateConfig(max_tokens=config["max_tokens"], temperature=0.0))
    started = time.perf_counter()
    logs = inspect_eval(task, model="openai-api/local/tiny", max_connections=config["concurrency"], log_dir=log_dir,
                        display="none", max_retries=3, fail_on_error=False)
    seconds = time.perf_counter() - started
    errors = sum(1 for s in (logs[0].samples or []) if s.error is not None) if logs[0].status != "error" else n
    return seconds, errors, logs[0].status

if config["kind"] == "warm":
    run("text", config["concurrency"], config["log_dir"])
    print(json.dumps({"ok": True}))
else:
    seconds, errors, status = run(config["kind"], config["n"], config["log_dir"])
    print(json.dumps({"seconds": seconds, "errors": errors, "status": status}))
"""

LM_EVAL_DRIVER = r"""
import json, sys, time
config = json.loads(sys.argv[1])
from PIL import Image
from lm_eval.api.instance import Instance
from lm_eval.models.api_models import JsonChatStr
from lm_eval.models.openai_completions import LocalChatCompletion

lm = LocalChatCompletion(model="tiny", base_url=config["url"] + "/chat/completions", num_concurrent=config["concurrency"],
                         max_gen_toks=config["max_tokens"], max_retries=3, tokenizer_backend=None, tokenized_requests=False)

def requests(kind, n):
    out = []
    for i in range(n):
        chat = JsonChatStr(json.dumps([{"role": "user", "content": f"{kind} question {i}: is it safe?"}]))
        gen = {"until": [], "max_gen_toks": config["max_tokens"], "do_sample": False}
        if kind == "image":
            with Image.open(config["images"][i % len(config["images"])]) as f:
                image = f.convert("RGB")
            args = (chat, gen, {"visual": [image]})
        else:
            args = (chat, gen)
        out.append(Instance(request_type="generate_until", doc={}, arguments=args, idx=i))
    return out

if config["kind"] == "warm":
    lm.generate_until(requests("text", config["concurrency"]), disable_tqdm=True)
    print(json.dumps({"ok": True}))
else:
    batch = requests(config["kind"], config["n"])  # lm-eval takes its requests as a list, images decoded up front
    started = time.perf_counter()
    answers = lm.generate_until(batch, disable_tqdm=True)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "errors": sum(1 for a in answers if not a)}))
"""

DRIVERS = {"inspect": INSPECT_DRIVER, "lm-eval": LM_EVAL_DRIVER}


def peer_python(name: str, peer_dir: Path) -> tuple[Path | None, str]:
    """The Python of the peer's virtual environment (created and installed on first use), and its version
    or why it is skipped."""
    requirements, module = PEERS[name]
    home = peer_dir / name
    python = home / "bin" / "python"
    marker = home / "installed.json"
    if not marker.exists() or json.loads(marker.read_text()).get("requirements") != requirements:
        print(f"installing {name} ({' '.join(requirements)}) into {home} ...", file=sys.stderr, flush=True)
        try:
            venv.EnvBuilder(with_pip=True, clear=True).create(home)
            subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements], check=True, timeout=1800)
        except (OSError, subprocess.SubprocessError) as exc:
            return None, f"skipped: cannot install {' '.join(requirements)} ({type(exc).__name__}: {str(exc)[:160]})"
        marker.write_text(json.dumps({"requirements": requirements}))
    probe = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version('{module.replace('_', '-')}'))"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return None, f"skipped: {module} does not import in {home} ({(probe.stderr.strip().splitlines() or ['?'])[-1][:160]})"
    return python, probe.stdout.strip()


def run_peer(name: str, python: Path, url: str, kind: str, n: int, images: Sequence[Path], concurrency: int, work: Path) -> dict[str, Any]:
    driver = work / f"{name}_driver.py"
    driver.write_text(DRIVERS[name])
    config = {"url": url, "kind": kind, "n": n, "images": [str(p) for p in images], "concurrency": concurrency, "max_tokens": MAX_TOKENS}
    config["log_dir"] = str(work / f"{name}-logs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTHONPATH"))}
    warm = subprocess.run([str(python), str(driver), json.dumps({**config, "kind": "warm"})], capture_output=True, text=True, env=env, timeout=1800)
    if warm.returncode != 0:
        return {"error": (warm.stderr.strip().splitlines() or ["?"])[-1][:200]}
    # The timed call runs in a fresh process that times only its call (not start-up or imports); nothing
    # reaches the server before that call, so resetting the server's counters here counts that call alone.
    server_call(url, "/reset", "POST")
    proc = subprocess.run([str(python), str(driver), json.dumps(config)], capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def load_line() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"
    except OSError:
        return "load average unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_text", type=int, default=400)
    parser.add_argument("--n_images", type=int, default=200)
    parser.add_argument("--image_size", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=16, help="C: the server's capacity and every client's concurrency")
    parser.add_argument("--latency", type=float, default=0.2, help="L: the server's fixed latency in seconds")
    parser.add_argument("--peers", default="vlmbench,inspect,lm-eval")
    parser.add_argument("--peer_dir", type=Path, default=Path(os.environ.get("VLMBENCH_PEER_DIR", Path.home() / ".cache" / "vlmbench" / "peers")))
    args = parser.parse_args(argv)
    wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
    ideal = args.concurrency / args.latency
    rows: list[list[Any]] = []
    notes: list[str] = []
    versions: dict[str, str] = {}
    pythons: dict[str, Path] = {}
    for name in wanted:
        if name == "vlmbench":
            import vlmbench

            versions[name] = vlmbench.__version__
        elif name in PEERS:
            python, version = peer_python(name, args.peer_dir)
            if python is None:
                notes.append(f"{name}: {version}")
            else:
                pythons[name], versions[name] = python, version
        else:
            notes.append(f"{name}: skipped: unknown peer (known: vlmbench, {', '.join(PEERS)})")
    print(f"before: {load_line()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder, fault_server(args.latency, args.concurrency) as url:
        work = Path(folder)
        images = make_images(work, args.n_images, args.image_size)
        for kind, n in (("text", args.n_text), ("image", args.n_images)):
            for name in wanted:
                if name == "vlmbench":
                    outcome = run_vlmbench(url, kind, n, images, args.concurrency)
                elif name in pythons:
                    outcome = run_peer(name, pythons[name], url, kind, n, images, args.concurrency, work)
                else:
                    continue
                if "error" in outcome:
                    notes.append(f"{name} ({kind}): failed: {outcome['error']}")
                    continue
                seen = server_figures(url)
                span = seen["span_s"]
                rows.append(
                    [
                        name,
                        versions[name],
                        kind,
                        n,
                        f"{outcome['seconds']:.2f}",
                        f"{n / outcome['seconds'] / ideal:.1%}",
                        f"{span:.2f}" if span else "-",
                        f"{n / span / ideal:.1%}" if span else "-",
                        outcome.get("errors", 0),
                        seen["requests"],
                        seen["rate_limited"],
                        seen["max_serving"],
                    ]
                )
    from tabulate import tabulate

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; {load_line()} (after)\n"
        f"server: latency L={args.latency:g} s, capacity C={args.concurrency} (more get an immediate 429); every client C={args.concurrency}; "
        f"ideal C/L = {ideal:.0f} req/s; images: {args.n_images} distinct {args.image_size}x{args.image_size} PNG files\n"
    )
    headers = [
        "framework",
        "version",
        "requests",
        "n",
        "call s",
        "of C/L",
        "server span s",
        "of C/L (span)",
        "errors",
        "server requests",
        "429s",
        "max served",
    ]
    print(tabulate(rows, headers=headers))
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
