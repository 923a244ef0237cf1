"""Number formatting, one convention for every output (tables, details, plots).

* ``percent``: a fraction shown x100 with the column's digits (default 1), rounded half up: ``48.8``.
* ``signed_percent``: a difference in percentage points, always with its sign: ``+1.2``, ``-0.4``,
  ``+0.0`` (never ``-0.0``, never unsigned), for the value and its CI bounds alike.
* ``x100``: a ratio that may exceed 1 (e.g. a score relative to reference answers) shown x100, like
  the percentages but not one: ``112.5`` is 12.5% above the reference.
* ``number``: as is, with the column's digits.
* Uncertainty: always the 95% confidence interval, ``[low, high]``, in the value's format and digits;
  ``few concepts`` where the value has fewer than 5 concepts and so no interval. A missing value is ``-``.
* The number beside a value (the paper's parsed-only form, the paired gap): ``paper (parsed only) 50.0,
  coverage 16.7%``: its label, its value and, where it has one, its coverage.
* A value an entry lacks in an optional column: ``-`` with the column's note, ``- (not run)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import DEFAULT_DIGITS, LOWER_MARK, X100_MARK, Column, Config, DetailMetric

PERCENT_FORMATS = ("percent", "signed_percent")
SCALED_FORMATS = (*PERCENT_FORMATS, "x100")  # shown x100
MISSING_TEXT = "-"
FEW_CONCEPTS = "few concepts"


def format_number(value: float, fmt: str, digits: int = DEFAULT_DIGITS) -> str:
    """A value as shown: percent (x100), signed percent (always signed), or plain number; never ``-0.0``. Rounded
    half up (away from zero) from the value's exact decimal expansion: 0.5625 (135 of 240) shows as 56.3, not as
    the round-half-even 56.2 of Python's format."""
    exact = Decimal(value) * 100 if fmt in SCALED_FORMATS else Decimal(value)
    text = str(exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))
    if float(text) == 0:
        text = f"{0:.{digits}f}"  # -0.04 rounds to 0.0, not -0.0
    if fmt == "signed_percent" and not text.startswith("-"):
        text = f"+{text}"
    return text


def format_cell(cell: Cell, fmt: str, digits: int = DEFAULT_DIGITS) -> tuple[str, str]:
    """``(main, uncertainty)`` display text: ``("48.8", "[45.1, 52.3]")``, ``("+1.2", "few concepts")``, ``("-", "")``."""
    if cell.value is None:
        return MISSING_TEXT, ""
    if fmt == "text" or isinstance(cell.value, str):
        return str(cell.value), ""
    main = format_number(cell.value, fmt, digits)
    if cell.ci_low is not None and cell.ci_high is not None:
        return main, f"[{format_number(cell.ci_low, fmt, digits)}, {format_number(cell.ci_high, fmt, digits)}]"
    return main, FEW_CONCEPTS if cell.few_clusters else ""


def beside_parts(cell: Cell, label: str, fmt: str, digits: int = DEFAULT_DIGITS) -> tuple[str, str]:
    """The number beside a value and its coverage: ``("paper (parsed only) 42.9", "17.5%")``; ``("", "")`` when none."""
    second = cell.beside
    if second is None:
        return "", ""
    if not isinstance(second.value, float):
        return f"{label} {MISSING_TEXT}", ""
    coverage = "" if second.coverage is None else f"{format_number(second.coverage, 'percent', digits)}%"
    return f"{label} {format_number(second.value, fmt, digits)}", coverage


def beside_text(cell: Cell, label: str, fmt: str, digits: int = DEFAULT_DIGITS) -> str:
    """The number shown beside a value: ``paper (parsed only) 42.9, coverage 17.5%``; '' when there is none."""
    text, coverage = beside_parts(cell, label, fmt, digits)
    return f"{text}, coverage {coverage}" if coverage else text


def cell_text(cell: Cell, fmt: str, digits: int = DEFAULT_DIGITS, label: str = "") -> str:
    """Display text in one string, for Markdown and JSON: value, CI, and the number beside it (``label``)."""
    main, unc = format_cell(cell, fmt, digits)
    text = f"{main} {unc}" if unc else f"{main} ({cell.note})" if cell.note and cell.value is None else main
    second = beside_text(cell, label, fmt, digits) if label else ""
    return f"{text}; {second}" if second else text


def tooltip(cell: Cell, fmt: str, digits: int = DEFAULT_DIGITS, label: str = "") -> str:
    """Each number's own n (and the interval and coverage of the number beside it), for a cell's tooltip:
    ``n = 1125; paper (parsed only): 50.0 [46.9, 53.1], n = 1100, coverage 97.8%``."""
    parts = [] if cell.n is None else [f"n = {cell.n}"]
    if cell.note and cell.value is None:
        parts.append(cell.note)
    second = cell.beside
    if second is not None and label and isinstance(second.value, float):
        main, unc = format_cell(second, fmt, digits)
        text = f"{label}: {main}" + (f" {unc}" if unc else "")
        text += "" if second.n is None else f", n = {second.n}"
        text += "" if second.coverage is None else f", coverage {format_number(second.coverage, 'percent', digits)}%"
        parts.append(text)
    return "; ".join(parts)


def detail_format(metric: DetailMetric) -> str:
    """The detail metric's own format; by default gaps are signed percentage points, the rest plain percent."""
    return metric.format or ("signed_percent" if metric.gap else "percent")


def legend(config: Config, columns: Sequence[Column] | None = None) -> str:
    """The sentences under every table: the config's own (``legend:``, what the numbers are), then ranks and
    formats, with the marks of the ``columns`` shown (default: every column)."""
    columns = config.columns if columns is None else columns
    sort, by = config.column(config.sort_column), config.column(config.category_sort_column)
    direction = "highest first" if config.descending else "lowest first"
    within = f"; within a category, by {by.title}, {'highest' if config.category_descending else 'lowest'} first" if by.id != sort.id else ""
    beside = " (never by the number beside a value)" if any(c.beside for c in columns) else ""
    marks = [
        f'"{LOWER_MARK}" marks a column where lower is better (ranked and first sorted lowest first). '
        if any(c.lower_better for c in columns)
        else "",
        f'"{X100_MARK}" marks ratios shown x100, not percent: 100 is on par with the reference, and they may exceed 100. '
        if any(c.format == "x100" for c in columns)
        else "",
        '"- (note)": the entry lacks that value, and why (e.g. a task its run skipped). ' if any(c.optional for c in columns) else "",
    ]
    return (
        (f"{config.legend} " if config.legend else "")
        + f"Ranked by {sort.title} ({direction}{within}){beside}. "
        + "".join(marks)
        + '"=" marks a shared rank: the difference to the next better model is within their two 95% confidence intervals combined. '
        '"ref" rows are reference baselines, not ranked. "[low, high]" is a 95% confidence interval, clustered by concept; '
        '"few concepts": fewer than 5 concepts, so no interval. Values are percent, signed ones ("+1.2") differences in '
        "percentage points; \"-\" means no value. Answers are judged by each task's rule scorer unless the model's row names "
        'its judge ("judge: ...").'
    )
