"""Rule-based answer parsing: free-form responses to a letter, a safety judgement, a refusal, or a choice.

Parsers return ``None`` when they cannot tell (the sample counts as unparsed); the safety parser
and the refusal parser may also return ``"refusal"``. A parser would rather say ``None`` than guess from a stray word.

Parsing is linear in the input and bounded for any input: a parser reads at most the first
``HEAD`` and the last ``TAIL`` characters of a response (where answers and verdicts are,
:mod:`~vlmbench.scoring.rules.text`), every regular expression has bounded quantifiers or
quantifiers that cannot overlap, and the safety analysis looks at most a dozen tokens around each word.

One module per parser: :mod:`~vlmbench.scoring.rules.multiple_choice`, :mod:`~vlmbench.scoring.rules.safety`
(with the words it reads in :mod:`~vlmbench.scoring.rules.safety_words`), :mod:`~vlmbench.scoring.rules.refusal`
(did the model decline a benign request? It reuses the safety parser's text preparation and refusal patterns)
and :mod:`~vlmbench.scoring.rules.choice`.
"""

from vlmbench.scoring.rules.choice import parse_choice
from vlmbench.scoring.rules.multiple_choice import LETTERS, parse_multiple_choice
from vlmbench.scoring.rules.refusal import parse_refusal
from vlmbench.scoring.rules.safety import parse_safety
from vlmbench.scoring.rules.text import UNPARSED

__all__ = ["LETTERS", "UNPARSED", "parse_choice", "parse_multiple_choice", "parse_refusal", "parse_safety"]
