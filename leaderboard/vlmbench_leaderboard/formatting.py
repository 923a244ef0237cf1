"""Number formatting, one convention for every output (tables, details, plots).

* ``percent``: a fraction shown x100 with the column's digits (default 1): ``48.8``.
* ``signed_percent``: a difference in percentage points, always with its sign: ``+1.2``, ``-0.4``,
  ``+0.0`` (never ``-0.0``, never unsigned), for the value and its CI bounds alike.
* ``number``: as is, with the column's digits.
* Uncertainty: ``± x``, the 95% CI half-width (1.96 x standard error), or ``[low, high]``, a 95% CI,
  both in the value's format and digits. A missing value is ``-``.
"""

from __future__ import annotations

from vlmbench_leaderboard.cells import Cell
from vlmbench_leaderboard.config import DEFAULT_DIGITS, Config, DetailMetric

Z95 = 1.96
PERCENT_FORMATS = ("percent", "signed_percent")
MISSING_TEXT = "-"


def format_number(value: float, fmt: str, digits: int = DEFAULT_DIGITS) -> str:
    """A value as shown: percent (x100), signed percent (always signed), or plain number; never ``-0.0``."""
    scaled = value * 100 if fmt in PERCENT_FORMATS else value
    text = f"{scaled:.{digits}f}"
    if float(text) == 0:
        text = f"{0:.{digits}f}"  # -0.04 rounds to 0.0, not -0.0
    if fmt == "signed_percent" and not text.startswith("-"):
        text = f"+{text}"
    return text


def format_cell(cell: Cell, fmt: str, digits: int = DEFAULT_DIGITS) -> tuple[str, str]:
    """``(main, uncertainty)`` display text: ``("48.8", "± 3.6")``, ``("+1.2", "[-0.4, +2.8]")``, ``("-", "")``."""
    if cell.value is None:
        return MISSING_TEXT, ""
    if fmt == "text" or isinstance(cell.value, str):
        return str(cell.value), ""
    main = format_number(cell.value, fmt, digits)
    if cell.stderr is not None:
        half = Z95 * cell.stderr * (100 if fmt in PERCENT_FORMATS else 1)
        return main, f"± {half:.{digits}f}"
    if cell.ci_low is not None and cell.ci_high is not None:
        return main, f"[{format_number(cell.ci_low, fmt, digits)}, {format_number(cell.ci_high, fmt, digits)}]"
    return main, ""


def cell_text(cell: Cell, fmt: str, digits: int = DEFAULT_DIGITS) -> str:
    """Display text in one string, for Markdown and JSON."""
    main, unc = format_cell(cell, fmt, digits)
    return f"{main} {unc}" if unc else main


def detail_format(metric: DetailMetric) -> str:
    """Gaps are signed percentage points, the rest plain percent."""
    return "signed_percent" if metric.gap else "percent"


def legend(config: Config) -> str:
    """The sentence under every table explaining ranks and number formats."""
    sort, by = config.column(config.sort_column), config.column(config.category_sort_column)
    direction = "highest first" if config.descending else "lowest first"
    within = f"; within a category, by {by.title}" if by.id != sort.id else ""
    return (
        f'Ranked by {sort.title} ({direction}{within}). "=" marks a shared rank: the difference to the next better model '
        'is within the 95% confidence interval. "ref" rows are reference baselines, not ranked. '
        '"± x" is the 95% CI half-width (1.96 × standard error); "[low, high]" is a 95% CI; values are percent, '
        'signed ones ("+1.2") differences in percentage points; "-" means no value. Answers are judged by each '
        "task's rule scorer unless the model's row names its judge (\"judge: ...\")."
    )
