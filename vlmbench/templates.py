"""Prompt templates: Jinja2 in a sandbox, so a task file is data and never runs code.

Task files come from anyone (a plugin, a colleague's folder, a downloaded bundle's task), so
templates render in Jinja2's immutable sandbox: no attribute access to Python internals, no
mutation; and within a budget of steps, time and value sizes (:mod:`vlmbench.template_limits`).
Every failure, whatever its kind, becomes one line naming the file and the field.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta, nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vlmbench import template_limits as limits
from vlmbench.errors import UserError, first_line

MAX_TEMPLATE_CHARS = 20_000
MAX_RENDERED_CHARS = limits.MAX_PROMPT_CHARS


class PromptTooLong(UserError):
    """A template rendered past :data:`MAX_RENDERED_CHARS` or its budget (a model judge makes it an error for that
    item only); ``reason``: what went over, in a few words."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class _BoundedTemplates(CodeGenerator):
    """Compiles templates so that what they make is measured (:mod:`vlmbench.template_limits`): every ``for``
    loop counts its iterations, every ``~`` and every list, tuple or dict literal is measured as it is made;
    recursive loops are refused."""

    def visit_Concat(self, node: nodes.Concat, frame: Any) -> None:
        self.write("environment.vlmbench_concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def _wrapped(self, helper: str, visit: Any, node: nodes.Expr, frame: Any) -> None:
        if getattr(node, "ctx", "load") != "load":  # an assignment target ({% for a, b in ... %})
            visit(node, frame)
            return
        self.write(f"environment.{helper}(")
        visit(node, frame)
        self.write(")")

    def visit_List(self, node: nodes.List, frame: Any) -> None:
        self._wrapped("vlmbench_built", super().visit_List, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Any) -> None:
        self._wrapped("vlmbench_built", super().visit_Tuple, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Any) -> None:
        self._wrapped("vlmbench_built", super().visit_Dict, node, frame)

    def visit_Compare(self, node: nodes.Compare, frame: Any) -> None:
        self._wrapped("vlmbench_ticked", super().visit_Compare, node, frame)

    def visit_Test(self, node: nodes.Test, frame: Any) -> None:
        self._wrapped("vlmbench_ticked", super().visit_Test, node, frame)

    def visit_Getitem(self, node: nodes.Getitem, frame: Any) -> None:
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.vlmbench_slice(")  # Jinja writes a slice as a plain subscript, past getitem
        self.visit(node.node, frame)
        for part in (node.arg.start, node.arg.stop, node.arg.step):
            self.write(", ")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Any) -> None:
        if node.recursive:
            raise limits.TemplateTooCostly("recursive loops are not allowed")
        call = nodes.Call(nodes.EnvironmentAttribute("vlmbench_bounded_loop"), [node.iter], [], None, None, lineno=node.lineno)
        node.iter = call.set_environment(self.environment)
        super().visit_For(node, frame)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operator, filter, method, literal, loop and output measured against
    the rendering's budget (:mod:`vlmbench.template_limits`)."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    code_generator_class = _BoundedTemplates
    vlmbench_bounded_loop = staticmethod(limits.bounded_loop)
    vlmbench_concat = staticmethod(lambda parts: _checked_concat(parts))
    vlmbench_built = staticmethod(limits.built)
    vlmbench_ticked = staticmethod(limits.ticked)
    concat = staticmethod(limits.bounded_join)  # {% set %} blocks, macros, {% filter %} blocks

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["lipsum"] = limits.bounded_lipsum(self.globals["lipsum"])
        self.globals["dict"] = limits.bounded_dict(self.globals["dict"])
        for name, function in list(self.filters.items()):
            self.filters[name] = limits.bounded_filter(name, function)
            if name in _TEXT_FILTERS:
                self.filters[name] = _text_filter(self.filters[name])
        self.filters["join"] = _join_filter(self.filters["join"])
        self.filters["format"] = _format_filter(self.filters["format"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "%":
            limits.checked_format(left, right)
            if isinstance(left, str) and isinstance(right, tuple):  # "%s" % x: what fills it in is text too
                _format_arguments(right)
            elif isinstance(left, str) and isinstance(right, Mapping) and "%(" in left:  # "%(name)s" % mapping
                _format_arguments(tuple(right.values()))
            elif isinstance(left, str):
                _text_part(right)
        else:
            limits.checked_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        pattern, mapping = value.__self__, value.__name__ == "format_map"
        limits.checked_format(pattern, ((), {}), braces=True)  # "{:>100000000}".format(x): when the method is looked up

        def checked(*args: Any, **kwargs: Any) -> Any:  # and with what it fills in, when it is called
            limits.checked_format(pattern, ((), args[0]) if mapping and args else (args, kwargs), braces=True)
            _format_arguments(tuple(args[0].values()) if mapping and args and isinstance(args[0], Mapping) else (*args, *kwargs.values()))
            return wrapped(*args, **kwargs)

        return checked

    @staticmethod
    def vlmbench_slice(obj: Any, start: Any, stop: Any, step: Any) -> Any:
        key = slice(start, stop, step)
        if isinstance(obj, (str, list, tuple)):
            limits.sliced(obj, key)
        return obj[key]

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limits.count_call()
        limits.check_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)


def _check_constants(tree: nodes.Template) -> None:
    """Refuse at compile time a ``*`` or ``**`` of constants that :meth:`_Sandbox.call_binop` would refuse
    (each part worked out once: a chain of powers costs its length, not its square)."""
    values: dict[int, Any] = {}

    def value(node: nodes.Expr) -> Any:
        if id(node) not in values:
            if isinstance(node, (nodes.Mul, nodes.Pow)):
                left, right = value(node.left), value(node.right)
                limits.checked_binop(node.operator, left, right)
                values[id(node)] = _ENV.binop_table[node.operator](left, right)
            else:
                values[id(node)] = node.as_const()
        return values[id(node)]

    for node in tree.find_all((nodes.Mul, nodes.Pow)):
        try:
            value(node)
        except limits.TemplateTooCostly:
            raise
        except Exception:  # not constant, or an error only if it runs ({% if false %}{{ 'a' * 'b' }}{% endif %})
            pass


class NotText(Exception):
    """A ``{{ ... }}`` that would show a value no prompt should hold as Python writes it: None ("None"), NaN or an
    infinity ("nan"), or a document's list, tuple, set or mapping ("['a', 'b']": a list the template makes
    itself is its author's choice). Text, numbers and booleans are shown."""

    def __init__(self, value: Any) -> None:
        super().__init__(describe_value(value))
        self.value = value


def describe_value(value: Any) -> str:
    """What a value that is no text is, in a few words (for error lines)."""
    if value is None:
        return "null (no value)"
    if isinstance(value, float):
        return "NaN" if value != value else "an infinity"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


_CONTAINERS = (list, tuple, set, frozenset, Mapping)


def _no_value(value: Any) -> bool:
    """None, NaN, an infinity or bytes: what no prompt holds, however a template shows it."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return True
    return isinstance(value, float) and (value != value or value in (float("inf"), float("-inf")))


def _from_document(context: Any, value: Any, limit: int = 10_000) -> bool:
    """Whether ``value`` (a container) is one of the document's fields or inside one (``x``, ``x.inner``, ``x[0]``)."""
    pending = [v for v in context.parent.values() if isinstance(v, _CONTAINERS)]
    seen = 0
    while pending and seen < limit:
        item = pending.pop()
        seen += 1
        if item is value:
            return True
        inner = item.values() if isinstance(item, Mapping) else item
        pending.extend(v for v in inner if isinstance(v, _CONTAINERS))
    return False


@jinja2.pass_context  # never worked out at compile time, outside a rendering's budget
def _shown(context: Any, value: Any) -> Any:
    """Every ``{{ ... }}`` before it becomes text: within the rendering's budget, and text (:class:`NotText`)."""
    if _no_value(value) or (isinstance(value, _CONTAINERS) and _from_document(context, value)):
        raise NotText(value)
    return limits.bounded_output(context, value)


def _text_part(value: Any) -> Any:
    """A value a filter or ``~`` turns into text: refused when it is no value or a container (:class:`NotText`)."""
    if _no_value(value) or isinstance(value, _CONTAINERS):
        raise NotText(value)
    return value


def _format_arguments(values: tuple[Any, ...]) -> None:
    """What ``%`` or ``format`` fills a text in with: text and numbers (no None, NaN, bytes or container)."""
    for value in values:
        _text_part(value)


def _format_filter(function: Any) -> Any:
    @jinja2.pass_context
    @functools.wraps(function)
    def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        _format_arguments((*args, *kwargs.values()))
        return function(context, value, *args, **kwargs)

    return checked


def _checked_concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b``, of text and numbers only."""
    for part in parts:
        _text_part(part)
    return limits.bounded_concat(parts)


# Filters that write their value as text (None as "None", a list as "['a']"), and the number filters that read
# None or NaN as 0: each refuses such a value (NotText), as {{ }} does.
_TEXT_FILTERS = frozenset(
    {"string", "trim", "upper", "lower", "title", "capitalize", "center", "e", "escape", "forceescape", "safe", "striptags", "wordwrap",
     "truncate", "indent", "replace", "pprint", "urlize", "int", "float", "round", "abs"}
)  # fmt: skip


def _text_filter(function: Any) -> Any:
    @jinja2.pass_context
    @functools.wraps(function)
    def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        return function(context, _text_part(value), *args, **kwargs)

    return checked


def _join_filter(function: Any) -> Any:
    @jinja2.pass_context
    @functools.wraps(function)
    def checked(context: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(value, (str, Mapping)) and not kwargs.get("attribute") and len(args) < 2 and hasattr(value, "__iter__"):
            value = list(value)  # a generator (reject, map, unique) or a view is looked through once, then joined
            for item in value:
                _text_part(item)
        return function(context, value, *args, **kwargs)

    return checked


_ENV = _Sandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, finalize=_shown)


@lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    token = limits.rendering()  # what is worked out at compile time, under a rendering's budget
    try:
        _check_constants(_ENV.parse(source))
        return _ENV.from_string(source)
    finally:
        limits.finish(token)


def compile_template(where: Path | str, field: str, source: str) -> jinja2.Template:
    """The compiled template, or a one-line error naming ``where`` and ``field``."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise UserError(f"{where}: field '{field}': template of {len(source)} characters; keep it under {MAX_TEMPLATE_CHARS}")
    try:
        return _compiled(source)
    except jinja2.TemplateSyntaxError as exc:
        raise UserError(f"{where}: field '{field}': template syntax error at line {exc.lineno} ({exc.message}); fix the template") from None
    except limits.TemplateTooCostly as exc:
        raise UserError(f"{where}: field '{field}': {_too_costly(exc)}") from None
    except Exception as exc:  # anything else the template engine raises is still the file's fault
        raise UserError(f"{where}: field '{field}': invalid template ({type(exc).__name__}: {first_line(exc, 160)})") from None


_PLAIN = (str, int, float, bool, type(None))


@lru_cache(maxsize=512)
def fields_read(source: str) -> tuple[str, ...]:
    """The document fields a template may read, in name order: the names it reads from its context (fields,
    or globals such as ``range``), less those starting with "_" (the harness's own)."""
    return tuple(sorted(name for name in meta.find_undeclared_variables(_ENV.parse(source)) if not name.startswith("_")))


def _render_bounded(template: jinja2.Template, values: Mapping[str, Any]) -> str:
    """``template.render(**values)`` under a fresh budget (:mod:`vlmbench.template_limits`), stopped as soon as
    the text passes :data:`MAX_RENDERED_CHARS` (a loop repeating the template's own text would otherwise
    gather gigabytes before it ends)."""
    token = limits.rendering()
    try:
        parts: list[str] = []
        total = 0
        for part in template.generate(**values):
            total += len(part)
            if total > MAX_RENDERED_CHARS:
                raise limits.TemplateTooCostly(f"it renders more than {MAX_RENDERED_CHARS} characters")
            parts.append(part)
        return "".join(parts)
    finally:
        limits.finish(token)


PLAIN_CACHE_CHARS = 4096
"""Documents whose fields a template reads hold at most this many characters in all to be cached by value."""


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
    values = tuple((k, type(doc[k]), doc[k], repr(doc[k]) if type(doc[k]) is float else "") for k in fields_read(source) if k in doc)
    plain = all(kind in _PLAIN for _, kind, _, _ in values)
    if plain and sum(len(v) for _, _, v, _ in values if isinstance(v, str)) <= PLAIN_CACHE_CHARS:  # long texts are not kept
        try:
            return _render_plain(source, values)
        except Exception as exc:  # never rendered a second time: a failure may have taken the whole budget
            raise _one_line(where, field, exc, doc, fields_read(source)) from None
    try:
        return _render_bounded(template, {k: v for k, v in doc.items() if not k.startswith("_")})
    except Exception as exc:
        raise _one_line(where, field, exc, doc, fields_read(source)) from None


class ShowsNoText(UserError):
    """A template would show a document's value that is no text (:class:`NotText`); ``column``: the document
    field holding it, when one does (callers add the dataset and row)."""

    def __init__(self, message: str, column: str | None) -> None:
        super().__init__(message)
        self.column = column


def _one_line(where: Path | str, field: str, exc: Exception, doc: Mapping[str, Any], reads: tuple[str, ...] = ()) -> UserError:
    """The one-line error of a template that failed while rendering over ``doc`` (``reads``: the fields the
    template reads, looked at first for the one a :class:`NotText` value came from)."""
    if isinstance(exc, NotText):
        names = [k for k in reads if k in doc and not k.startswith("_")]  # only a field the template reads is blamed
        column = next((k for k in names if doc[k] is exc.value), None)
        if column is None:
            column = next((k for k in names if _same_value(doc[k], exc.value)), None)
        holder = f"the document's '{column}'" if column else "a value"
        return ShowsNoText(
            f"{where}: field '{field}': {holder} is {exc}, which a prompt would show as Python writes it; "
            "a prompt shows text and numbers only: fix the data, or join a list in the template (e.g. '| join(\", \")')",
            column,
        )
    if isinstance(exc, jinja2.UndefinedError):
        available = ", ".join(sorted(k for k in doc if not k.startswith("_")))
        return UserError(f"{where}: field '{field}': {exc.message}; available fields: {available}")
    if isinstance(exc, limits.TemplateTooCostly):  # as a prompt too long: a model judge fails that item only
        return PromptTooLong(f"{where}: field '{field}': {_too_costly(exc)}", first_line(exc, 160))
    if isinstance(exc, SecurityError):
        return UserError(
            f"{where}: field '{field}': the template tried an unsafe operation ({first_line(exc, 160)}); templates may only read document fields"
        )
    # ZeroDivisionError, TypeError, MemoryError, RecursionError ... inside a template: the file's fault, one line
    return UserError(f"{where}: field '{field}': the template failed ({type(exc).__name__}: {first_line(exc, 160)}); fix the template")


def _same_value(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:
        return False


def _too_costly(exc: limits.TemplateTooCostly) -> str:
    return f"the template asks for too much ({first_line(exc, 160)}); a prompt is at most {MAX_RENDERED_CHARS} characters, simplify the template"
