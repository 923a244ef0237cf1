"""The run page as one HTML file: CSS and script inline under a hash-based Content-Security-Policy.

The run's data sits in a ``<script type="application/json">`` block with ``<``, ``>`` and ``&``
escaped, so no text from the run can close the block or open a tag; the page's one script reads it
with ``JSON.parse`` and places every text with ``textContent``. The policy allows exactly that
script and style, and images only from ``data:`` URLs, so nothing else can run or load.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from importlib import resources
from typing import Any


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and line separators escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def csp_source(text: str) -> str:
    """A Content-Security-Policy source allowing exactly this inline text."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()}'"


def policy(script: str, style: str) -> str:
    """The page's Content-Security-Policy: its own script and style, ``data:`` images, nothing else."""
    return f"default-src 'none'; script-src {csp_source(script)}; style-src {csp_source(style)}; img-src data:; base-uri 'none'; form-action 'none'"


def _asset(name: str) -> str:
    return resources.files("vlmbench.view").joinpath(name).read_text(encoding="utf-8")


def render_page(data: dict[str, Any]) -> tuple[str, str]:
    """The page for ``data`` (from :func:`vlmbench.view.data.load_run`) and its Content-Security-Policy."""
    script, style = _asset("page.js"), _asset("page.css")
    csp = policy(script, style)
    run = data.get("run", {})
    values = {
        "CSP": html.escape(csp),
        "TITLE": html.escape(f"vlmbench run: {run.get('model') or run.get('backend') or 'model'}"),
        "CSS": style,
        "JS": script,
        "DATA": script_json(data),
    }
    # One pass: text put in is never scanned again, so a run's text cannot name a placeholder.
    page = re.sub(r"\{\{([A-Z]+)\}\}", lambda m: values[m.group(1)], _asset("page.html"))
    return page, csp
