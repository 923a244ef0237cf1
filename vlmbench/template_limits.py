"""What one rendering of a task file's template may cost: steps, time, and the size of every value it makes.

Templates come from task files, which anyone may write (:mod:`vlmbench.templates` renders them in Jinja2's
immutable sandbox, which keeps them from Python's internals). These limits keep them from the machine's
memory and time as well. Each rendering has a :class:`Budget`:

- **steps**: loop iterations and calls, :data:`MAX_STEPS` in all;
- **time**: :data:`MAX_SECONDS` of wall-clock time, checked at every step, comparison, operator, filter
  and output (one operation in C code cannot be stopped midway: the size limits keep each one short);
- **size**: every text, list, tuple or dict the template makes (a literal, ``+``, ``*``, ``~``, a slice, a
  format, a filter, a method of a text) is measured before it is made, as the text it would show
  (:meth:`Budget.size`: a list holding the same list twice counts it twice, so ``[x, x]`` nested a few
  dozen times, billions of items shown, is refused when it is built), and refused past
  :data:`MAX_VALUE_CHARS`; all it makes together, past :data:`MAX_MADE_CHARS`;
- **methods**: only those listed below may be called on texts, numbers and containers;
- **output**: what ``{{ ... }}`` produces, in macros and ``{% set %}`` blocks too, :data:`MAX_OUTPUT_CHARS`
  in all; the prompt itself stops at its own limit while it is produced (``templates._render_bounded``).

Anything refused raises :class:`TemplateTooCostly`, which the caller turns into one line naming the file
and the field.
"""

from __future__ import annotations

import datetime
import decimal
import functools
import itertools
import re
import string
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextvars import ContextVar
from typing import Any, cast

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.utils import Namespace, _PassArg, pass_context

from vlmbench.numbers import whole_number

_SCALARS = (float, complex, decimal.Decimal, datetime.date, datetime.time, datetime.timedelta, Undefined)

MAX_PROMPT_CHARS = 100_000
"""The longest prompt (what a rendering returns)."""
MAX_VALUE_CHARS = 100 * MAX_PROMPT_CHARS
"""The largest value a template may make or show on the way (a document field may be long and then be cut)."""
MAX_MADE_CHARS = 5 * MAX_VALUE_CHARS
"""All the values one rendering makes, together (what it keeps alive is at most that)."""
MAX_OUTPUT_CHARS = 2 * MAX_VALUE_CHARS
"""What ``{{ ... }}`` may produce in one rendering, macros and ``{% set %}`` blocks included."""
MAX_STEPS = 100_000
"""Loop iterations and calls one rendering may make, all loops and macros together."""
MAX_SECONDS = 5.0
"""Wall-clock time one rendering may take (an ordinary prompt takes well under a millisecond)."""
MAX_INT_BITS = 4 * MAX_PROMPT_CHARS
"""An integer a template computes: about 120,000 decimal digits at most."""
MAX_ITEMS = 1_000_000
"""The most items a filter reads from a sequence made on the fly."""
MAX_DEPTH = 200
"""How deeply values may nest (lists in lists...)."""


class TemplateTooCostly(SecurityError):
    """A template asked for more work, time or memory than a prompt can need (the message says what)."""


class Budget:
    """What one rendering has spent: steps, output, its deadline, and the measured size of each value it made
    (kept with the value, so that an id is never reused while the rendering runs)."""

    def __init__(self) -> None:
        self.steps = 0
        self.output = 0
        self.made = 0
        self.deadline = time.monotonic() + MAX_SECONDS
        self._sizes: dict[int, tuple[Any, int]] = {}

    def tick(self, steps: int = 0) -> None:
        """Count ``steps`` and check the clock."""
        self.steps += steps
        if self.steps > MAX_STEPS:
            raise TemplateTooCostly(f"more than {MAX_STEPS} loop iterations and calls in one rendering")
        if time.monotonic() > self.deadline:
            raise TemplateTooCostly(f"more than {MAX_SECONDS:g} s to render")

    def size(self, value: Any, depth: int = 0) -> int:
        """About how many characters ``str(value)`` has, found without building that text."""
        if isinstance(value, (str, bytes)):
            if depth and isinstance(value, str) and not value.isprintable():  # shown as its repr: "\U000e0001" is 10 characters
                return 10 * len(value)
            return len(value)
        if isinstance(value, bool) or value is None:
            return 5
        if isinstance(value, int):
            return value.bit_length() // 3 + 2
        if isinstance(value, Namespace):
            value = value._Namespace__attrs  # what {{ ns }} shows
        if isinstance(value, _SCALARS) or not isinstance(value, Sized) or not hasattr(value, "__iter__"):
            return 32  # a number, a date, an undefined, a generator (measured where it is read): a short text
        kept = self._sizes.get(id(value))
        if kept is not None and kept[0] is value:
            return kept[1]
        if depth > MAX_DEPTH:
            raise TemplateTooCostly(f"values nested more than {MAX_DEPTH} levels deep")
        self._sizes[id(value)] = (value, MAX_VALUE_CHARS + 1)  # a value that holds itself is too large
        parts: Iterable[Any] = itertools.chain.from_iterable(value.items()) if isinstance(value, Mapping) else cast(Iterable[Any], value)
        total = 2
        for part in parts:
            total += self.size(part, depth + 1) + 2
            if total > MAX_VALUE_CHARS:
                break  # the rest cannot make it smaller
        self._sizes[id(value)] = (value, total)
        return total

    def check(self, value: Any, what: str, limit: int = MAX_VALUE_CHARS) -> Any:
        """``value``, refused when :meth:`size` says it is over ``limit``."""
        if self.size(value) > limit:
            raise TemplateTooCostly(f"{what} would make more than {limit} characters")
        return value

    def check_length(self, length: int, what: str) -> None:
        """Refuse a result of ``length`` characters or items over :data:`MAX_VALUE_CHARS`, before it is made, and
        count it against :data:`MAX_MADE_CHARS`."""
        if length > MAX_VALUE_CHARS:
            raise TemplateTooCostly(f"{what} would make more than {MAX_VALUE_CHARS} characters or items")
        self.made += length
        if self.made > MAX_MADE_CHARS:
            raise TemplateTooCostly(f"more than {MAX_MADE_CHARS} characters made in one rendering")


_BUDGET: ContextVar[Budget | None] = ContextVar("vlmbench_template_budget", default=None)


def budget() -> Budget:
    """The budget of the rendering under way (a fresh one outside a rendering: compile-time folding)."""
    current = _BUDGET.get()
    return current if current is not None else Budget()


def rendering() -> Any:
    """Set a fresh :class:`Budget` for one rendering; returns the token to reset it with."""
    return _BUDGET.set(Budget())


def finish(token: Any) -> None:
    """End the rendering :func:`rendering` began."""
    _BUDGET.reset(token)


# ----------------------------------------------------------------------------------------- operators


def checked_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse a ``+``, ``*`` or ``**`` whose result would be too large, before computing it."""
    spend = budget()
    spend.tick()
    if operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            spend.check_length(len(left) + len(right), "'+'")
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            spend.check_length(spend.size(left) + spend.size(right), "'+'")
    elif operator == "*":
        for sequence, times in ((left, right), (right, left)):
            repeated = isinstance(sequence, (str, bytes, list, tuple)) and isinstance(times, int) and not isinstance(times, bool)
            if repeated and max(times, 0) * max(spend.size(sequence), 1) > MAX_VALUE_CHARS:
                raise TemplateTooCostly(f"'*' would repeat {len(sequence)} item(s) {times} times, over {MAX_VALUE_CHARS} characters")
            if repeated:
                spend.check_length(max(times, 0) * spend.size(sequence), "'*'")
        if isinstance(left, int) and isinstance(right, int) and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
            raise TemplateTooCostly(f"a product of more than {MAX_INT_BITS} bits")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0:  # noqa: SIM102
        if abs(left).bit_length() * min(right, MAX_INT_BITS + 1) > MAX_INT_BITS:  # the result's size, before computing it
            raise TemplateTooCostly(f"a power of more than {MAX_INT_BITS} bits (exponent {right})")


def bounded_concat(parts: tuple[Any, ...]) -> str:
    """``a ~ b``: doubling a text in a loop would need a few steps only."""
    spend = budget()
    spend.tick()
    spend.check_length(sum(spend.size(part) for part in parts), "'~'")
    return "".join(str(part) for part in parts)


def bounded_join(parts: Any) -> str:
    """What a ``{% set %}`` block, a macro or a ``{% filter %}`` block produced, joined (Jinja's ``concat``)."""
    parts = list(parts)
    budget().check_length(sum(len(part) for part in parts), "a block")
    return "".join(parts)


def built(value: Any) -> Any:
    """A list, tuple or dict literal, measured as it is made."""
    spend = budget()
    spend.tick()
    spend.check_length(spend.size(value), "a list or dict")
    return value


def sliced(value: Any, key: slice) -> None:
    """``value[a:b:c]`` of a text, list or tuple: a new value of that many items."""
    spend = budget()
    spend.tick()
    spend.check_length(len(range(*key.indices(len(value)))), "a slice")


def ticked(value: Any) -> Any:
    """A comparison or test, done: a step (one may take a while on long values)."""
    budget().tick(1)
    return value


@pass_context  # so that Jinja never works it out at compile time, outside any rendering's budget
def bounded_output(context: Any, value: Any) -> Any:
    """Every ``{{ ... }}`` before it becomes text."""
    spend = budget()
    spend.tick()
    size = spend.size(value)
    if size > MAX_VALUE_CHARS:
        raise TemplateTooCostly(f"a value shown would make more than {MAX_VALUE_CHARS} characters")
    spend.output += size
    if spend.output > MAX_OUTPUT_CHARS:
        raise TemplateTooCostly(f"more than {MAX_OUTPUT_CHARS} characters of output in one rendering")
    return value


def bounded_loop(iterable: Any) -> Iterator[Any]:
    """A ``for`` loop's items, each a step."""
    spend = budget()
    for item in iterable:
        spend.tick(1)
        yield item


def count_call() -> None:
    """A call (a macro, a filter, a method, a global) is a step."""
    budget().tick(1)


# ------------------------------------------------------------------------------------------ formats

# The widths and precisions of %-conversions ("%10s", "%-5.2f") and of {}-fields ("{:>10}", "{0:.3f}").
_PERCENT_WIDTHS = re.compile(r"%(?:\([^)]*\))?[-+ #0]*(\d*|\*)(?:\.(\d*|\*))?[a-zA-Z%]")
_BRACE_SPECS = re.compile(r"\{[^{}:]*:((?:[^{}]|\{[^{}]*\})*)\}")
_PERCENT_FIELDS = re.compile(r"%(?:\(([^)]*)\))?[-+ #0]*(\d*)(?:\.\d*)?[a-zA-Z]")


def checked_format(pattern: Any, values: Any = None, braces: bool = False) -> None:
    """Refuse a ``%`` pattern (``braces``: a ``str.format`` pattern) whose widths come from the arguments
    (``%*s``, ``{:>{}}``: they cannot be checked first), or whose result, the pattern and each field at the
    larger of its width and its value's size, would be too large. ``values``: what fills its fields (a tuple,
    a mapping, or one value; for ``format`` a pair of the positional and keyword arguments)."""
    spend = budget()
    spend.tick()
    if not isinstance(pattern, str):
        return
    numbers = [n for pair in _PERCENT_WIDTHS.findall(pattern) for n in pair if n]
    specs = _BRACE_SPECS.findall(pattern)
    if "*" in numbers or any("{" in spec for spec in specs):
        raise TemplateTooCostly("a format width taken from the arguments")
    numbers += [n for spec in specs for n in re.findall(r"\d+", spec)]
    if any(int(n) > MAX_VALUE_CHARS for n in numbers):
        raise TemplateTooCostly(f"a format width over {MAX_VALUE_CHARS}")
    fields = _brace_fields(pattern, values) if braces else _percent_fields(pattern, values)
    spend.check_length(len(pattern) + sum(max(width, spend.size(value)) for width, value in fields), "a format")


def _percent_fields(pattern: str, values: Any) -> list[tuple[int, Any]]:
    """(width, value) of each conversion of a ``%`` pattern."""
    fields: list[tuple[int, Any]] = []
    for position, match in enumerate(_PERCENT_FIELDS.finditer(pattern)):
        key, width = match.group(1), int(match.group(2) or 0)
        if isinstance(values, Mapping):
            value = values.get(key) if key is not None else values
        elif isinstance(values, tuple):
            value = values[position] if position < len(values) else None
        else:
            value = values
        fields.append((width, value))
    return fields


def _brace_fields(pattern: str, values: Any) -> list[tuple[int, Any]]:
    """(width, value) of each field of a ``str.format`` pattern; ``values`` is (positional, keyword)."""
    positional, named = values if isinstance(values, tuple) and len(values) == 2 else ((), {})
    fields: list[tuple[int, Any]] = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError:  # the call itself says what is wrong
        return fields
    automatic = 0
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        base = re.split(r"[.\[]", name, maxsplit=1)[0]  # an attribute or item of a value is no larger than it
        if base == "":
            base, automatic = str(automatic), automatic + 1
        index = whole_number(base)
        value = positional[index] if index is not None and index < len(positional) else named.get(base) if isinstance(named, Mapping) else None
        widths = [int(n) for n in re.findall(r"\d+", spec or "")]
        fields.append((max(widths, default=0), value))
    return fields


# ------------------------------------------------------------------------------------------ filters


def _size_of_replace(text: str, old: str, new: str, count: Any) -> int:
    times = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        times = min(times, count)
    return len(text) + times * max(len(new) - len(old), 0)


def _size_of_join(spend: Budget, items: Any, separator: str) -> int:
    """The length of ``separator.join(items)``, at most (the items as shown, a separator between each two)."""
    return spend.size(items) + (len(items) if isinstance(items, Sized) else 0) * len(separator)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_READ_ONCE = frozenset({"join", "sum", "list", "batch", "slice", "map", "unique", "sort", "reverse", "dictsort"})


def _check_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a filter call whose result would be too large; returns its arguments (a lazy sequence read once)."""
    spend = budget()
    first = args[0] if args else None
    named = [*args[1:], *kwargs.values()]

    def argument(position: int, keyword: str, default: Any = None) -> Any:
        return kwargs.get(keyword, args[position] if len(args) > position else default)

    if name in _READ_ONCE and first is not None and not isinstance(first, (Sized, str)):  # a generator: read once, bounded, passed on
        first = list(itertools.islice(first, MAX_ITEMS + 1))
        spend.check_length(len(first), f"'{name}'")
        args = (first, *args[1:])
    if name == "format":
        checked_format(first, kwargs or tuple(args[1:]))
    elif name == "int" and isinstance(first, str) and len(first) > MAX_INT_BITS // 4:
        raise TemplateTooCostly(f"'int' of a text of {len(first)} characters")
    elif name == "replace":
        text = str(spend.check(first, "'replace'"))
        old, new = str(argument(1, "old", "")), str(argument(2, "new", ""))
        spend.check_length(_size_of_replace(text, old, new, argument(3, "count")), "'replace'")
    elif name == "join":
        spend.check_length(_size_of_join(spend, first, str(argument(1, "d", ""))), "'join'")
    elif name in ("batch", "slice"):
        count, fill = _int(argument(1, "linecount" if name == "batch" else "slices")), argument(2, "fill_with")
        items = len(first) if isinstance(first, Sized) else 0
        lists = count if name == "slice" else items // max(count, 1) + 1
        spend.check_length(lists * 64 + count * (spend.size(fill) + 2 if fill is not None else 1), f"'{name}'")  # a list costs 64 bytes
    elif name == "indent":
        width = argument(1, "width", 4)
        lines = str(first).count("\n") + 1 if isinstance(first, str) else 1
        spend.check_length(len(str(first)) + lines * (len(width) if isinstance(width, str) else _int(width)), "'indent'")
    elif name == "center":
        spend.check_length(max(_int(argument(1, "width", 80)), spend.size(first)), "'center'")
    elif name == "wordwrap":
        width, wrap = max(_int(argument(1, "width", 79)), 1), argument(3, "wrapstring")
        chars = spend.size(first)
        spend.check_length(chars + (chars // width + 1) * (len(wrap) if isinstance(wrap, str) else 1), "'wordwrap'")
    elif name == "urlize":
        extra = sum(len(v) for v in named if isinstance(v, str))
        spend.check_length(spend.size(first) * (2 + extra), "'urlize'")
    elif name == "tojson":
        indent = _int(argument(1, "indent"))
        spend.check_length(spend.size(first) * (1 + indent * 8), "'tojson'")
    elif name == "sum" and not isinstance(argument(2, "start", 0), (int, float)) and not (isinstance(first, Sized) and len(first) <= 1000):
        raise TemplateTooCostly("'sum' of more than 1000 lists or texts (adding them one by one takes quadratic time)")
    slow = MAX_URLIZE_CHARS if name == "urlize" else MAX_SLOW_TEXT_CHARS
    if name in _SLOW_ON_TEXT and spend.size(first) > slow:
        raise TemplateTooCostly(f"'{name}' of more than {slow} characters")
    if name in _GROWTH:  # a new value about as large as what it reads, or larger: counted against what the rendering makes
        spend.check_length(spend.size(first) * (1 if name == "string" and isinstance(first, str) else _GROWTH[name]), f"'{name}'")
    return args


MAX_SLOW_TEXT_CHARS = 10 * MAX_PROMPT_CHARS
"""The longest text given to a filter that works through it in Python (``urlize``, ``title``...)."""
MAX_URLIZE_CHARS = 10_000
"""The longest text given to ``urlize``, whose time can grow with the square of its length."""
_SLOW_ON_TEXT = frozenset({"urlize", "title", "wordwrap", "wordcount", "pprint", "striptags", "groupby"})
# How many times longer than what it reads a filter's result may be shown (escapes, JSON's \uXXXX, a text
# made a list of its characters, case changes that grow a letter).
_GROWTH = {
    **dict.fromkeys(("tojson", "urlencode"), 12),
    **dict.fromkeys(("pprint", "string"), 10),
    **dict.fromkeys(("e", "escape", "forceescape", "xmlattr", "list", "sort", "unique", "reverse", "batch", "slice"), 6),
    **dict.fromkeys(("upper", "lower", "title", "capitalize", "trim", "striptags", "wordwrap", "center", "indent"), 3),
    **dict.fromkeys(("map", "dictsort", "groupby", "select", "reject", "selectattr", "rejectattr", "urlize", "safe", "items"), 3),
}


def bounded_filter(name: str, function: Any) -> Any:
    """``function`` (the filter called ``name``), refused before it would make too large a value. It takes the
    template's context, so that Jinja never calls it at compile time, outside any rendering's budget."""
    wants = _PassArg.from_obj(function)

    @pass_context
    @functools.wraps(function)
    def bounded(context: Any, *arguments: Any, **kwargs: Any) -> Any:
        budget().tick(1)
        args = _check_filter(name, arguments, kwargs)
        if wants is _PassArg.context:
            return function(context, *args, **kwargs)
        if wants is _PassArg.eval_context:
            return function(context.eval_ctx, *args, **kwargs)
        if wants is _PassArg.environment:
            return function(context.environment, *args, **kwargs)
        return function(*args, **kwargs)

    return bounded


def bounded_lipsum(function: Any) -> Any:
    """``lipsum(n, html, min, max)``, refused when ``n`` paragraphs of up to ``max`` words could not fit."""

    @functools.wraps(function)
    def bounded(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> Any:  # lipsum's own names
        budget().tick(1)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, min, max)):
            raise TemplateTooCostly("lipsum takes whole numbers")
        budget().check_length(n * max * 12, "lipsum")
        return function(n, html, min, max)

    return bounded


def bounded_dict(function: Any) -> Any:
    """The ``dict(...)`` global, measured as it is made."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        return built(function(*args, **kwargs))

    return bounded


# ------------------------------------------------------------------------------ methods of values

# Methods a template may call on a text, and how much longer than the text their result may be. Every
# other method of a text, of bytes or of a number is refused (``translate``, ``encode``, ``hex``...).
_TEXT_METHODS = {
    **dict.fromkeys(("startswith", "endswith", "find", "rfind", "index", "rindex", "count", "isalnum", "isalpha", "isascii"), 0),
    **dict.fromkeys(("isdecimal", "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper"), 0),
    **dict.fromkeys(("split", "rsplit", "splitlines", "strip", "lstrip", "rstrip", "partition", "rpartition"), 2),
    **dict.fromkeys(("removeprefix", "removesuffix"), 1),
    **dict.fromkeys(("lower", "upper", "title", "capitalize", "casefold", "swapcase"), 3),  # "ﬃ".upper() is "FFI"
}
_CHECKED_TEXT_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "format", "format_map"})
_CONTAINER_METHODS = frozenset({"get", "items", "keys", "values", "index", "count", "copy"})
_VALUE_TYPES = (str, bytes, bytearray, int, float, complex, list, tuple, dict, set, frozenset)
_NUMBER_METHODS = frozenset({"bit_length", "bit_count", "is_integer", "conjugate", "as_integer_ratio"})


def check_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse a call of a method of a text, bytes, number or container that is not on the lists above, or whose
    result would be too large (``'x'.ljust(10**9)``, ``'a'.translate({97: 'b' * 10**6})``)."""
    owner, name = getattr(method, "__self__", None), getattr(method, "__name__", "")
    if isinstance(owner, type) and issubclass(owner, _VALUE_TYPES):  # dict.fromkeys, str.maketrans, int.from_bytes...
        raise TemplateTooCostly(f"the method '{name}' of {owner.__name__} is not allowed in templates")
    if not isinstance(owner, _VALUE_TYPES):
        return  # a macro, a global (range, dict, namespace...), loop.cycle, a cycler's next...
    spend = budget()
    values = [*args, *kwargs.values()]
    if isinstance(owner, str) and name in _TEXT_METHODS:
        spend.check_length(len(owner) * _TEXT_METHODS[name], f"'{name}'")
    elif isinstance(owner, str) and name in _CHECKED_TEXT_METHODS:
        if name in ("ljust", "rjust", "center", "zfill"):
            spend.check_length(max(_int(values[0]) if values else 0, len(owner)), f"'{name}'")
        elif name == "expandtabs":
            spend.check_length(len(owner) * max(_int(values[0]) if values else 8, 1), "'expandtabs'")
        elif name == "replace" and len(args) >= 2:
            spend.check_length(_size_of_replace(owner, str(args[0]), str(args[1]), args[2] if len(args) > 2 else kwargs.get("count")), "'replace'")
        elif name == "join" and args:
            spend.check_length(_size_of_join(spend, args[0], owner), "'join'")
    elif isinstance(owner, (bytes, bytearray)) and name == "decode":
        spend.check_length(len(owner), "'decode'")
    elif (isinstance(owner, (list, tuple, dict, set, frozenset)) and name in _CONTAINER_METHODS) or (
        isinstance(owner, (int, float)) and not isinstance(owner, bool) and name in _NUMBER_METHODS
    ):
        return
    else:
        raise TemplateTooCostly(f"the method '{name}' of a {type(owner).__name__} is not allowed in templates")
