"""Prompt templates: Jinja2 in a sandbox, so a task file is data and never runs code.

Task files come from anyone (a plugin, a colleague's folder, a downloaded bundle's task), so
templates render in Jinja2's immutable sandbox: no attribute access to Python internals, no
mutation. Every failure, whatever its kind, becomes one line naming the file and the field.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping, Sized
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vlmbench.errors import UserError

MAX_TEMPLATE_CHARS = 20_000
MAX_RENDERED_CHARS = 100_000


class PromptTooLong(UserError):
    """A template rendered past :data:`MAX_RENDERED_CHARS` (a model judge makes it an error for that item only)."""


MAX_TEMPLATE_STEPS = 100_000
"""Loop iterations and calls one rendering may make, all loops and macros together."""

_MAX_INT_BITS = 4 * MAX_RENDERED_CHARS  # an integer a template computes: about 120,000 decimal digits at most


class TemplateTooCostly(SecurityError):
    """A template asked for more work or memory than a prompt can need (the message says what)."""


def _checked_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a ``+``, ``*`` or ``**`` whose result would be too large, before computing it."""
    if operator == "+":
        if isinstance(left, (str, list, tuple)) and isinstance(right, type(left)) and len(left) + len(right) > MAX_RENDERED_CHARS:
            raise TemplateTooCostly(f"'+' would make more than {MAX_RENDERED_CHARS} characters or items")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple, bytes)) and isinstance(times, int) and len(seq) * times > MAX_RENDERED_CHARS:
                raise TemplateTooCostly(f"'*' would repeat {len(seq)} item(s) {times} times, over {MAX_RENDERED_CHARS}")
        if isinstance(left, int) and isinstance(right, int) and abs(left).bit_length() + abs(right).bit_length() > _MAX_INT_BITS:
            raise TemplateTooCostly(f"a product of more than {_MAX_INT_BITS} bits")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:  # noqa: SIM102
        if abs(left).bit_length() * min(right, _MAX_INT_BITS + 1) > _MAX_INT_BITS:  # the result's size, before computing it
            raise TemplateTooCostly(f"a power of more than {_MAX_INT_BITS} bits (exponent {right})")


MAX_TEMPLATE_OUTPUT = 10 * MAX_RENDERED_CHARS
"""Characters one rendering may produce in all, its macros' and ``{% set %}`` blocks' output included."""
_MAX_DEPTH = 200


def _text_size(value: Any) -> int:
    """About how many characters ``str(value)`` would have, found without building it: a list that holds
    the same list twice counts it twice (a few steps of ``[x, x]`` make a text of billions). Refuses values
    nested past :data:`_MAX_DEPTH` or holding themselves."""
    memo: dict[int, int] = {}
    walking: set[int] = set()

    def size(item: Any, depth: int) -> int:
        if isinstance(item, str):
            return len(item)
        if isinstance(item, bool) or item is None:
            return 5
        if isinstance(item, int):
            return item.bit_length() // 3 + 2
        if not isinstance(item, (list, tuple, set, frozenset, dict)):
            return 32  # a number, a date, an undefined: a short text
        key = id(item)
        if key in memo:
            return memo[key]
        if depth > _MAX_DEPTH or key in walking:
            raise TemplateTooCostly(f"a value nested more than {_MAX_DEPTH} levels deep, or holding itself")
        walking.add(key)
        parts = [p for pair in item.items() for p in pair] if isinstance(item, dict) else list(item)
        total = 2 + sum(size(part, depth + 1) + 2 for part in parts)
        walking.discard(key)
        memo[key] = total
        return total

    return size(value, 0)


def _check_text_size(value: Any, what: str) -> None:
    if _text_size(value) > MAX_RENDERED_CHARS:
        raise TemplateTooCostly(f"{what} would make more than {MAX_RENDERED_CHARS} characters")


@jinja2.pass_context
def _bounded_output(context: Any, value: Any) -> Any:
    """Every ``{{ ... }}`` (in macros and ``{% set %}`` blocks too), before it becomes text: refused when it
    would be longer than a prompt can be, or when the rendering's output passes :data:`MAX_TEMPLATE_OUTPUT`."""
    size = len(value) if isinstance(value, str) else _text_size(value)
    if size > MAX_RENDERED_CHARS:
        raise TemplateTooCostly(f"a value of more than {MAX_RENDERED_CHARS} characters")
    produced = getattr(context, "_vlmbench_output", 0) + size
    if produced > MAX_TEMPLATE_OUTPUT:
        raise TemplateTooCostly(f"more than {MAX_TEMPLATE_OUTPUT} characters of output in one rendering")
    context._vlmbench_output = produced
    return value


def _count_step(context: Any) -> None:
    steps = getattr(context, "_vlmbench_steps", 0) + 1
    if steps > MAX_TEMPLATE_STEPS:
        raise TemplateTooCostly(f"more than {MAX_TEMPLATE_STEPS} loop iterations and calls in one rendering")
    context._vlmbench_steps = steps


@jinja2.pass_context
def _bounded_loop(context: Any, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _count_step(context)
        yield item


def _bounded_concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b``, refused when longer than a prompt can be: doubling a text in a loop would need a few steps only."""
    for part in parts:
        if not isinstance(part, str):
            _check_text_size(part, "'~'")
    texts = [str(part) for part in parts]
    if sum(len(text) for text in texts) > MAX_RENDERED_CHARS:
        raise TemplateTooCostly(f"'~' would make more than {MAX_RENDERED_CHARS} characters")
    return "".join(texts)


# The widths and precisions of %-conversions ("%10s", "%-5.2f") and of {}-fields ("{:>10}", "{0:.3f}").
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*)(?:\.(\d*))?[a-zA-Z%]")
_BRACE_SPECS = re.compile(r"\{[^{}:]*:([^{}]*)\}")


def _checked_format(template: Any) -> None:
    """Refuse a ``%``/``format`` pattern whose widths would make a text longer than a prompt can be."""
    if not isinstance(template, str):
        return
    numbers = [n for pair in _PERCENT_WIDTHS.findall(template) for n in pair if n]
    numbers += [n for spec in _BRACE_SPECS.findall(template) for n in re.findall(r"\d+", spec)]
    if any(int(n) > MAX_RENDERED_CHARS for n in numbers):
        raise TemplateTooCostly(f"a format width over {MAX_RENDERED_CHARS}")


def _bounded_filter(name: str, function: Any) -> Any:
    """A filter that takes a width (``center``, ``indent``), formats (``format``) or replaces, refused before it
    would make a text longer than a prompt can be."""

    passes_context = getattr(function, "jinja_pass_arg", None) is not None  # its first argument is Jinja's, not the template's

    @functools.wraps(function)
    def bounded(*arguments: Any, **kwargs: Any) -> Any:
        args = arguments[1:] if passes_context else arguments
        values = [*args, *kwargs.values()]
        if name == "format":
            _checked_format(next((v for v in values if isinstance(v, str)), None))
        elif name == "replace":
            text, old, new = ([v for v in values if isinstance(v, str)] + ["", "", ""])[:3]
            count = next((v for v in values if isinstance(v, int) and not isinstance(v, bool)), None)
            times = text.count(old) if old else len(text) + 1
            if (times if count is None or count < 0 else min(times, count)) * len(new) > MAX_RENDERED_CHARS:
                raise TemplateTooCostly(f"'replace' would make more than {MAX_RENDERED_CHARS} characters")
        elif name == "join" and args:
            items: Any = args[0] if isinstance(args[0], Sized) else list(itertools.islice(args[0], MAX_RENDERED_CHARS + 1))
            separator = kwargs.get("d", args[1] if len(args) > 1 else "")
            _check_text_size(list(items) if not isinstance(items, (str, list, tuple, dict)) else items, "'join'")
            if len(items) > MAX_RENDERED_CHARS or (isinstance(separator, str) and len(items) * len(separator) > MAX_RENDERED_CHARS):
                raise TemplateTooCostly(f"'join' would make more than {MAX_RENDERED_CHARS} characters")
            arguments = (*arguments[: len(arguments) - len(args)], items, *args[1:])
        elif name in ("string", "tojson", "pprint", "sum", "list") and args and not isinstance(args[0], str):  # a text is only copied
            _check_text_size(args[0], f"'{name}'")
        elif any(isinstance(v, int) and not isinstance(v, bool) and v > MAX_RENDERED_CHARS for v in values):
            raise TemplateTooCostly(f"'{name}' with a width over {MAX_RENDERED_CHARS}")
        return function(*arguments, **kwargs)

    return bounded


def _bounded_lipsum(function: Any) -> Any:
    """``lipsum(n, html, min, max)``, refused when ``n`` paragraphs of up to ``max`` words could not fit a prompt."""

    @functools.wraps(function)
    def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # lipsum's own names
        if isinstance(n, int) and isinstance(max, int) and n * max * 12 > MAX_RENDERED_CHARS:
            raise TemplateTooCostly(f"lipsum of {n} paragraphs of up to {max} words")
        return function(n, html, min, max)

    return bounded


class _BoundedLoops(CodeGenerator):
    """Every ``for`` loop iterates through :func:`_bounded_loop`, which counts its iterations against the
    rendering's :data:`MAX_TEMPLATE_STEPS`; recursive loops (which re-enter without it) are refused; every
    ``~`` goes through :func:`_bounded_concat`."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.vlmbench_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_For(self, node: nodes.For, frame: Any) -> None:
        if node.recursive:
            raise TemplateTooCostly("recursive loops are not allowed")
        call = nodes.Call(nodes.EnvironmentAttribute("vlmbench_bounded_loop"), [node.iter], [], None, None, lineno=node.lineno)
        node.iter = call.set_environment(self.environment)
        super().visit_For(node, frame)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded: ``*`` and ``**`` are checked before they run (and so are never folded
    at compile time), and loop iterations and calls count against :data:`MAX_TEMPLATE_STEPS`."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _BoundedLoops
    vlmbench_bounded_loop = staticmethod(_bounded_loop)
    vlmbench_concat = staticmethod(_bounded_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["lipsum"] = _bounded_lipsum(self.globals["lipsum"])
        for name in ("center", "indent", "format", "replace", "join", "string", "tojson", "pprint", "sum", "list"):
            self.filters[name] = _bounded_filter(name, self.filters[name])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            _checked_format(left)
        else:
            _checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # "{:>100000000}".format(x): checked when the method is looked up
            _checked_format(value.__self__)
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _count_step(__context)
        return super().call(__context, __obj, *args, **kwargs)


def _check_constants(tree: nodes.Template) -> None:
    """Refuse at compile time a ``*`` or ``**`` of constants that :meth:`_Sandbox.call_binop` would refuse."""

    def value(node: nodes.Expr) -> Any:
        if isinstance(node, (nodes.Mul, nodes.Pow)):
            left, right = value(node.left), value(node.right)
            _checked_binop(node.operator, left, right)
            return _ENV.binop_table[node.operator](left, right)
        return node.as_const()

    for node in tree.find_all((nodes.Mul, nodes.Pow)):
        try:
            value(node)
        except TemplateTooCostly:
            raise
        except Exception:  # not constant, or an error only if it runs ({% if false %}{{ 'a' * 'b' }}{% endif %})
            pass


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, finalize=_bounded_output)


@lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    _check_constants(_ENV.parse(source))
    return _ENV.from_string(source)


def compile_template(where: Path | str, field: str, source: str) -> jinja2.Template:
    """The compiled template, or a one-line error naming ``where`` and ``field``."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise UserError(f"{where}: field '{field}': template of {len(source)} characters; keep it under {MAX_TEMPLATE_CHARS}")
    try:
        return _compiled(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where}: field '{field}': template syntax error at line {exc.lineno} ({exc.message}); fix the template") from None
    except TemplateTooCostly as exc:
        raise UserError(f"{where}: field '{field}': {_too_costly(exc)}") from None
    except Exception as exc:  # anything else the template engine raises is still the file's fault
        raise UserError(f"{where}: field '{field}': invalid template ({type(exc).__name__}: {_first_line(exc)})") from None


_PLAIN = (str, int, float, bool, type(None))


@lru_cache(maxsize=512)
def _public_fields_read(source: str) -> tuple[str, ...]:
    """The document fields a template may read, in name order: the names it reads from its context (fields,
    or globals such as ``range``), less those starting with "_" (the harness's own)."""
    return tuple(sorted(name for name in meta.find_undeclared_variables(_ENV.parse(source)) if not name.startswith("_")))


def _render_bounded(template: jinja2.Template, values: Mapping[str, Any]) -> str:
    """``template.render(**values)``, stopped as soon as the text passes :data:`MAX_RENDERED_CHARS` (a loop
    repeating the template's own text would otherwise gather gigabytes before it ends)."""
    parts: list[str] = []
    total = 0
    for part in template.generate(**values):
        total += len(part)
        if total > MAX_RENDERED_CHARS:
            raise TemplateTooCostly(f"it renders more than {MAX_RENDERED_CHARS} characters")
        parts.append(part)
    return "".join(parts)


@lru_cache(maxsize=65536)
def _render_plain(source: str, values: tuple[tuple[str, type, Any, str], ...]) -> str:
    # Each value's type and spelling are part of the key: 1, 1.0 and True are equal keys, as are 0.0 and
    # -0.0, but they render as "1", "1.0", "True", "0.0" and "-0.0".
    return _render_bounded(_compiled(source), {name: value for name, _, value, _ in values})


def render(where: Path | str, field: str, source: str, doc: Mapping[str, Any]) -> str:
    """Render a template over a document's public fields, with one-line errors.

    A template that reads only plain values (text, numbers) renders once per distinct set of them: the
    prompts of a task repeat across its documents."""
    template = compile_template(where, field, source)
    values = tuple((k, type(doc[k]), doc[k], repr(doc[k]) if type(doc[k]) is float else "") for k in _public_fields_read(source) if k in doc)
    if all(kind in _PLAIN for _, kind, _, _ in values):
        try:
            return _render_plain(source, values)
        except Exception:  # undefined fields, unsafe operations, too long...: the full path below says which
            pass
    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    try:
        text = _render_bounded(template, public)
    except jinja2.UndefinedError as exc:
        raise UserError(f"{where}: field '{field}': {exc.message}; available fields: {', '.join(sorted(public))}") from None
    except TemplateTooCostly as exc:  # as a prompt too long: a model judge fails that item only
        raise PromptTooLong(f"{where}: field '{field}': {_too_costly(exc)}") from None
    except SecurityError as exc:
        raise UserError(
            f"{where}: field '{field}': the template tried an unsafe operation ({_first_line(exc)}); templates may only read document fields"
        ) from None
    except Exception as exc:  # ZeroDivisionError, TypeError, ... inside a template: the file's fault, one line
        raise UserError(f"{where}: field '{field}': the template failed ({type(exc).__name__}: {_first_line(exc)}); fix the template") from None
    return text


def _too_costly(exc: TemplateTooCostly) -> str:
    return f"the template asks for too much ({_first_line(exc)}); a prompt is at most {MAX_RENDERED_CHARS} characters, simplify the template"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:160]
