"""``vlmbench view RUN_DIR``: a self-contained HTML page to browse a run's samples.

The page (one file, no network) filters by task, category, concept, prompt and outcome (correct,
wrong, unparsed, refusal, error) and shows each sample's image thumbnail, prompt, response and
verdicts. ``--serve`` serves it on 127.0.0.1 only, to requests addressed to it by this machine's
names for it (127.0.0.1, localhost, [::1] and the port), until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vlmbench.cli import args as types
from vlmbench.cli.commands import CommandSpec
from vlmbench.errors import Stopped, UserError, printable
from vlmbench.numbers import whole_number

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
    for note in data["notes"]:  # a note quotes the run's task names, a dataset's or a file's words
        print(f"vlmbench: note: {printable(note)}", file=sys.stderr)
    if ns.serve:
        if ns.out:
            _write(_out_path(Path(ns.out)), page)
        return serve(page, csp, ns.port)
    out = _write(_out_path(Path(ns.out)) if ns.out else Path(ns.run_dir) / PAGE_NAME, page)
    samples = sum(len(t["samples"]) for t in data["tasks"])
    print(printable(f"wrote {out} ({len(data['tasks'])} tasks, {samples} samples); open it in a browser"))
    return 0


def _out_path(path: Path) -> Path:
    """``--out``: the file itself, or ``view.html`` in it when it names a folder."""
    return path / PAGE_NAME if path.is_dir() else path


def _write(path: Path, page: str) -> Path:
    """Write ``page`` to ``path``, replacing (never writing through) a link, FIFO or file planted there in a
    run folder from elsewhere."""
    from vlmbench.cli.outpath import not_a_folder
    from vlmbench.safefiles import replace_file

    blocker = not_a_folder(path)
    if blocker is not None:
        raise UserError(f"--out {printable(str(path))}: {printable(str(blocker))} is not a folder; pass --out with a file in a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, page)
    except OSError as exc:
        raise UserError(f"{printable(str(path))}: cannot write the page ({exc.strerror}); pass --out with a writable file") from None
    return path


def allowed_hosts(port: int) -> frozenset[str]:
    """The Host headers ``--serve`` answers: this machine's names for it. Any other is a page elsewhere
    that made its own name resolve to 127.0.0.1 (DNS rebinding) to read the run."""
    names = ("127.0.0.1", "localhost", "[::1]")
    return frozenset([*(f"{name}:{port}" for name in names), *(names if port == 80 else ())])


def serve(page: str, csp: str, port: int) -> int:
    """Serve ``page`` at http://127.0.0.1:PORT/ until interrupted (port 0 picks a free one)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = page.encode("utf-8")
    hosts: frozenset[str] = frozenset()  # set once the port is known (port 0 picks one); read per request

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            sent = self.headers.get_all("Host") or []
            if len(sent) != 1 or sent[0].strip().lower() not in hosts:
                self._answer(403, "text/plain", b"forbidden: open the page at the address vlmbench printed\n")
            elif self.path.split("?")[0] in ("/", "/index.html", f"/{PAGE_NAME}"):
                self._answer(200, "text/html", body)
            else:
                self._answer(404, "text/plain", b"not found\n")

        def _answer(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
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
    hosts = allowed_hosts(server.server_address[1])
    print(f"serving the run page at http://{HOST}:{server.server_address[1]}/ (only this machine can reach it; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except Stopped as exc:  # SIGTERM or SIGHUP: the status says so
        return 128 + exc.signum
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def port(text: str) -> int:
    """``--port``: 0 (a free port) to 65535."""
    number = whole_number(text)
    if number is not None and number <= 65535:
        return number
    raise UserError(f"--port {text!r}: not a port number; use 1-65535, or 0 to pick a free one")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``vlmbench view``."""
    parser.add_argument("run_dir", type=types.path, help="a run folder written by `vlmbench run` (finished or partial)")
    parser.add_argument("--out", default=None, type=types.path, help=f"where to write the page (default: RUN_DIR/{PAGE_NAME})")
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
