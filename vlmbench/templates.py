"""Prompt templates: Jinja2 in a sandbox, so a task file is data and never runs code.

Task files come from anyone (a plugin, a colleague's folder, a downloaded bundle's task), so
templates render in Jinja2's immutable sandbox: no attribute access to Python internals, no
mutation. Every failure, whatever its kind, becomes one line naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vlmbench.errors import UserError

MAX_TEMPLATE_CHARS = 20_000
MAX_RENDERED_CHARS = 100_000

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


@lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def compile_template(where: Path | str, field: str, source: str) -> jinja2.Template:
    """The compiled template, or a one-line error naming ``where`` and ``field``."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise UserError(f"{where}: field '{field}': template of {len(source)} characters; keep it under {MAX_TEMPLATE_CHARS}")
    try:
        return _compiled(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where}: field '{field}': template syntax error at line {exc.lineno} ({exc.message}); fix the template") from None
    except Exception as exc:  # anything else the template engine raises is still the file's fault
        raise UserError(f"{where}: field '{field}': invalid template ({type(exc).__name__}: {_first_line(exc)})") from None


_PLAIN = (str, int, float, bool, type(None))


@lru_cache(maxsize=512)
def _public_fields_read(source: str) -> tuple[str, ...]:
    """The document fields a template may read, in name order: the names it reads from its context (fields,
    or globals such as ``range``), less those starting with "_" (the harness's own)."""
    return tuple(sorted(name for name in meta.find_undeclared_variables(_ENV.parse(source)) if not name.startswith("_")))


@lru_cache(maxsize=65536)
def _render_plain(source: str, values: tuple[tuple[str, type, Any, str], ...]) -> str:
    # Each value's type and spelling are part of the key: 1, 1.0 and True are equal keys, as are 0.0 and
    # -0.0, but they render as "1", "1.0", "True", "0.0" and "-0.0".
    return _compiled(source).render(**{name: value for name, _, value, _ in values})


def render(where: Path | str, field: str, source: str, doc: Mapping[str, Any]) -> str:
    """Render a template over a document's public fields, with one-line errors.

    A template that reads only plain values (text, numbers) renders once per distinct set of them: the
    prompts of a task repeat across its documents."""
    template = compile_template(where, field, source)
    values = tuple((k, type(doc[k]), doc[k], repr(doc[k]) if type(doc[k]) is float else "") for k in _public_fields_read(source) if k in doc)
    if all(kind in _PLAIN for _, kind, _, _ in values):
        try:
            text = _render_plain(source, values)
        except Exception:  # undefined fields, unsafe operations...: the full path below says which
            pass
        else:
            if len(text) <= MAX_RENDERED_CHARS:
                return text
    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        text = template.render(**public)
    except jinja2.UndefinedError as exc:
        raise UserError(f"{where}: field '{field}': {exc.message}; available fields: {', '.join(sorted(public))}") from None
    except SecurityError as exc:
        raise UserError(
            f"{where}: field '{field}': the template tried an unsafe operation ({_first_line(exc)}); templates may only read document fields"
        ) from None
    except Exception as exc:  # ZeroDivisionError, TypeError, ... inside a template: the file's fault, one line
        raise UserError(f"{where}: field '{field}': the template failed ({type(exc).__name__}: {_first_line(exc)}); fix the template") from None
    if len(text) > MAX_RENDERED_CHARS:
        raise UserError(f"{where}: field '{field}': the template renders {len(text)} characters; keep prompts under {MAX_RENDERED_CHARS}")
    return text


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:160]
