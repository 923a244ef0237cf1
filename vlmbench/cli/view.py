"""``vlmbench view RUN_DIR``: a self-contained HTML page to browse a run's samples.

The page (one file, no network) filters by task, category, concept, prompt and outcome (correct,
wrong, unparsed, refusal, error) and shows each sample's image thumbnail, prompt, response and
verdicts. ``--serve`` serves it on 127.0.0.1 only, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import UserError

PAGE_NAME = "view.html"
DEFAULT_PORT = 8765
HOST = "127.0.0.1"  # never another interface: a run's prompts and responses are not for the network


def view(ns: argparse.Namespace) -> int:
    """Write the page (default ``RUN_DIR/view.html``), or serve it with ``--serve``."""
    from vlmbench.evaluation import parse_data_files
    from vlmbench.view.data import load_run
    from vlmbench.view.page import render_page

    data_files = parse_data_files(ns.data_files)
    data = load_run(Path(ns.run_dir), ns.include_path or [], thumbnails=not ns.no_thumbnails, data_files=data_files)
    page, csp = render_page(data)
    for note in data["notes"]:
        print(f"vlmbench: note: {note}", file=sys.stderr)
    if ns.serve:
        if ns.out:
            _write(Path(ns.out), page)
        return serve(page, csp, ns.port)
    out = _write(Path(ns.out) if ns.out else Path(ns.run_dir) / PAGE_NAME, page)
    samples = sum(len(t["samples"]) for t in data["tasks"])
    print(f"wrote {out} ({len(data['tasks'])} tasks, {samples} samples); open it in a browser")
    return 0


def _write(path: Path, page: str) -> Path:
    if path.is_dir():
        path = path / PAGE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--out {path}: cannot write ({exc.strerror}); choose a writable file") from None
    return path


def serve(page: str, csp: str, port: int) -> int:
    """Serve ``page`` at http://127.0.0.1:PORT/ until interrupted (port 0 picks a free one)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = page.encode("utf-8")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.split("?")[0] in ("/", "/index.html", f"/{PAGE_NAME}")
            data = body if found else b"not found\n"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8" if found else "text/plain; charset=utf-8")
            self.send_header("Content-Security-Policy", csp + "; frame-ancestors 'none'")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # quiet: no line per request
            return

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as exc:
        raise UserError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror}); pass another --port (0 picks a free one)") from None
    print(f"serving the run page at http://{HOST}:{server.server_address[1]}/ (only this machine can reach it; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def port(text: str) -> int:
    """``--port``: 0 (a free port) to 65535."""
    if text.isdigit() and int(text) <= 65535:
        return int(text)
    raise UserError(f"--port {text!r}: not a port number; use 1-65535, or 0 to pick a free one")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench view``."""
    parser.add_argument("run_dir", help="a run folder written by `vlmbench run` (finished or partial)")
    parser.add_argument("--out", default=None, help=f"where to write the page (default: RUN_DIR/{PAGE_NAME})")
    parser.add_argument("--serve", action="store_true", help=f"serve the page on {HOST} instead of writing it (Ctrl-C stops)")
    parser.add_argument("--port", type=port, default=DEFAULT_PORT, help=f"port for --serve (default: {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--no_thumbnails", action="store_true", help="leave out image thumbnails (faster; no dataset is loaded)")
    parser.add_argument(
        "--data_files",
        action="append",
        metavar="HUB_ID=PATH",
        help="the local copies the run was given with --data_files, for thumbnails (repeatable)",
    )
    types.add_include_path(parser)
    parser.set_defaults(func=view)


COMMAND = CommandSpec("view", "write (or serve) an HTML page to browse a run's samples", add_arguments)
