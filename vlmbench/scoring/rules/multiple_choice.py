"""The multiple-choice parser: the letter A-D a response picks (see :func:`parse_multiple_choice`)."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from vlmbench.scoring.rules.text import HEAD, UNPARSED, prepare, word_set

LETTERS = ("A", "B", "C", "D")


_LETTER = r"(?P<letter>[A-Da-d])(?![A-Za-z'])"
_BOLD_LETTER = re.compile(r"\*\*\s?[(\[]?([A-D])[)\]]?[.:)]?\s?\*\*")
# Answer words in other languages, read as "answer" (the letter that follows is what counts).
_FOREIGN_ANSWER = re.compile(r"respuesta|r[ée]ponse|antwort|risposta|resposta|ответ|答案|答え|正解|回答", re.IGNORECASE)
_CYRILLIC_LETTER = re.compile(r"(answer\w{0,3}|вариант\w{0,3})(\s?[:\-]?\s?)([АВСавс])(?![^\W\d_])", re.IGNORECASE)
_CYRILLIC_TO_LATIN = str.maketrans("АВСавс", "ABCabc")
_MC_CONTRACTIONS = re.compile(r"\b(it|that|this|which|what)'s\b|\b(i)'d\b", re.IGNORECASE)
# A guess ("not sure, maybe B?") is no answer unless the response states one.
_MC_HEDGE = re.compile(
    r"\b(?:not (?:entirely |completely |totally |quite |really )?(?:sure|certain)|unsure|maybe|perhaps|possibly|i guess|hard to (?:say|tell)|can'?t tell)\b",
    re.IGNORECASE,
)
# "A, B, C, or D" (the prompt's own wording, often repeated): a list of letters, not an answer.
_LETTER_LIST = re.compile(
    r"(?<![A-Za-z])[A-D](?:\s?,\s?[A-D]){1,3},?\s(?:or|and)\s[A-D](?![A-Za-z])|\b[A-D](?:/[A-D]){2,3}\b|"
    r"(?<![A-Za-z])[A-D](?:\s?,\s?[A-D]){2,3}(?![A-Za-z])"  # "A, B, C, D"
)

_ARTICLES = r"(?:(?:probably|likely|clearly|definitely|most likely)\s)?(?:(?:the|la|le|el|die|der|o|a|l')\s?)?"
_CONNECTOR = r"(?:\s?(?:is|would be|will be|should be|must be|es|est|ist|è|é|是|为|為|は|:|=|-|,))?\s?"
_OPTION_WORD = r"(?:(?:option|choice|letter|opción|opzione|opção|选项|選項|オプション)\s?)?"
_STATED = re.compile(
    r"(?:\banswer\s?(?:\w{1,15}\s)?"
    + _CONNECTOR
    + _ARTICLES
    + r"|\b(?:correct|right|best|final|likely|relevant|appropriate|fitting|closest|suitable)\s(?:answer|option|choice|one|match)"
    + _CONNECTOR
    + _ARTICLES
    + r"|\b(?:i\s(?:would\s|will\s)?(?:choose|pick|select|go with|opt for|say)|i\s(?:would\s)?(?:lean|am leaning)\stowards?|"
    r"my\s(?:choice|pick)(?:\sis)?|it\sis|it\swould\sbe|it\s(?:looks|seems)\slike|"
    r"that\sis|this\sis|which\sis|corresponds\sto|matches|falls\sunder)\s" + r"|(?:选项|選項|选择?|選擇?|選ぶ))" + _OPTION_WORD + r"[(\[]?" + _LETTER,
    re.IGNORECASE,
)
# "C is the correct answer", "Robbery (B) is the best fit".
_LETTER_FIRST = re.compile(
    r"(?<![A-Za-z'])[(\[]?(?P<letter>[A-D])[)\]]?(?:\s\([^()\n]{1,40}\))?\s(?:is|would be|seems|appears to be)\s(?:the\s)?"
    r"(?:correct|right|best|most|answer|closest|likely)\b"
)
# "..., so D.", "therefore C": a conclusion, when the letter ends it ("So A is not correct", "so D?" and "Thus B is
# ruled out" conclude nothing).
_CONCLUDED = re.compile(r"\b(?:so|therefore|thus|hence),?\s[(\[]?(?P<letter>[A-D])[)\]]?(?=\s?[.!]|\s?$)", re.IGNORECASE)
# "A and C both apply", "both B and D fit": two letters given at once (no single answer); not "B and D are both incorrect".
_FITS = r"(?:apply|applies|fit|fits|work|works|match|matches|could|are (?:correct|right|possible|plausible|valid|relevant))\b"
_BOTH = re.compile(
    r"(?<![A-Za-z'])(?P<first>[A-D])[)\]]?\s(?:and|&)\s[(\[]?(?P<second>[A-D])[)\]]?\s(?:both|are both|could both|each)\s" + _FITS + r"|"
    r"\bboth\s(?:options?\s)?[(\[]?(?P<first2>[A-D])[)\]]?\s(?:and|&)\s[(\[]?(?P<second2>[A-D])[)\]]?\s" + _FITS
)
# "The third option": an option by its place in the list (not "the first option that comes to mind").
_ORDINAL = re.compile(
    r"\bthe\s(?P<ordinal>first|second|third|fourth)\s(?:option|choice|one listed)\b(?!\s(?:that|which|would|i|to|of)\b)"
    # nor one rejected: "The first option is wrong", "the second option doesn't fit"
    r"(?!\s(?:is|seems|looks)\s(?:wrong|incorrect|unlikely|out|not)\b|\s(?:does\s?n[o']?t|do\s?n[o']?t|cannot|can't)\b)",
    re.IGNORECASE,
)
_ORDINAL_LETTER = {"first": "A", "second": "B", "third": "C", "fourth": "D"}
_ALSO_LETTER = re.compile(r"[)\]]?\s?(?:or|and|/|,)\s?[(\[]?([A-D])(?![A-Za-z'])")
_LEADING = re.compile(r"[^\w(\[]{0,5}(?:(?:option|choice|answer)\s?:?\s?)?[(\[]?(?P<letter>[A-Da-d])(?:[)\].:,]|\s-|\s\(|\s?$|\n)", re.IGNORECASE)
_MENTIONED = re.compile(
    r"(?:\b(?:option|choice|letter|opción|opzione|opção)|選択肢|选项|選項|オプション)\s?[(\[]?" + _LETTER + r"|\((?P<paren>[A-D])\)", re.IGNORECASE
)
_LONE_LETTER = re.compile(r"(?<![\w'])([A-D])(?![\w'])")
_ARTICLE_WORD = re.compile(r"\s{1,3}([a-zà-ÿ]+)")
_NEGATED_BEFORE = re.compile(r"(?:\b(?:not|no|nor|rather than|instead of|than|unlike|except|excluding)|n't)\s(?:an?\s|the\s|any\s)?$")
# What joins a negated letter or option to the next one, which the negation also covers ("not A or B").
_NEGATED_RUN = re.compile(r"(?:,|\bor|\bnor|\band)\s?$")
# Words after a capital "A" that show it is the letter, not the article ("A or B", "A is correct").
_NOT_NOUNS = word_set("or and is as seems appears would could might because since fits best was")
# Beyond this many mentions of option texts the response is degenerate; the rest are not compared.
_MAX_SPANS = 64


class _Span(NamedTuple):
    start: int
    end: int
    letter: str


def parse_multiple_choice(response: str, options: Mapping[str, str] | None = None) -> str | None:
    """The letter A-D a response picks, or None when it picks none or more than one.

    Evidence, strongest first; the strongest level that names any letter decides, and two
    different letters there give None: a stated answer ("the answer is c", "答案是C", "I'd go with
    B"); a leading letter ("B", "(C)", "D: ..."), a bold letter, or an option quoted with its letter;
    a mentioned letter ("option D", "(A)") or an option's text (the longest wins: naming "gun
    violence" does not also name "gun"); a single stand-alone capital. A negated letter or option
    text ("not B", "isn't a swastika") names nothing. A repeated list of all the
    options is ignored, so "A: x; B: y; C: z; D: w; the answer is C" reads as C.
    """
    text = _mc_text(response)
    bold = {m.group(1) for m in _BOLD_LETTER.finditer(response[:HEAD])}
    echoes = _option_echoes(text, options or {})
    listed = {span for group in _echo_groups(echoes) if len({s.letter for s in group}) >= 3 for span in group}
    text = _blank(text, listed)
    quoted = {s.letter for s in echoes if s not in listed}
    levels: list[set[str]] = [
        _stated_letters(text),
        _leading_letters(text) | bold | quoted,
        _mentioned_letters(text) | _named_options(text, options or {}),
        _lone_letters(text),
    ]
    for level, letters in enumerate(levels):
        if letters:
            guessing = level >= 2 and _MC_HEDGE.search(text)
            return letters.pop() if len(letters) == 1 and not guessing else UNPARSED
    return UNPARSED


def _mc_text(response: str) -> str:
    """Prepared text with answer words in other languages read as "answer" and lists of letters removed."""
    text = prepare(response)
    text = _FOREIGN_ANSWER.sub(" answer ", text)
    text = _CYRILLIC_LETTER.sub(lambda m: m.group(1) + m.group(2) + m.group(3).translate(_CYRILLIC_TO_LATIN), text)
    text = _MC_CONTRACTIONS.sub(lambda m: f"{m.group(1)} is" if m.group(1) else f"{m.group(2)} would", text)
    return _LETTER_LIST.sub(" ", text)


def _blank(text: str, spans: Iterable[_Span]) -> str:
    """``text`` with each span replaced by a line break (keeps the other offsets meaningful)."""
    out: list[str] = []
    last = 0
    for span in sorted(spans):
        out.append(text[last : span.start])
        out.append("\n")
        last = span.end
    out.append(text[last:])
    return "".join(out)


# Endings taken off an option's last word to match its derived forms: "torture" also names "tortured", "burglary"
# "burglar", "harassment" "harassed", "cyberbullying" "cyberbullied". The stem must keep at least _MIN_STEM letters,
# so short words ("gun", "arson", "abuse") match only themselves and their plurals.
_DERIVED_ENDINGS = ("ment", "ing", "ies", "ed", "y", "e")
_MIN_STEM = 5


def _stem(word: str) -> str | None:
    """``word`` without the first of _DERIVED_ENDINGS it ends with, or None when no stem of _MIN_STEM letters is left."""
    for ending in _DERIVED_ENDINGS:
        stem = word[: -len(ending)]
        if word.endswith(ending) and len(stem) >= _MIN_STEM and stem.isalpha():
            return stem
    return None


class _OptionText(NamedTuple):
    """How an option's text is found: its regex, and a lower-case piece of text every match holds."""

    pattern: str
    required: str


def _option_text(name: str) -> _OptionText:
    """The regex for an option's text: case-, hyphen- and plural-insensitive, leading "The" optional; the last word
    also matches its derived forms when it has a stem (:func:`_stem`). Built once per process for an option
    text of ordinary length (the options of a task repeat across its documents)."""
    return _cached_option_text(name) if len(name) <= _CACHED_PATTERN_CHARS else _build_option_text(name)


def _build_option_text(name: str) -> _OptionText:
    name = name.strip().lower()
    name = name[4:] if name.startswith("the ") else name
    if name.endswith("s") and not name.endswith("ss"):
        name = name[:-1]
    parts = [part for part in re.split(r"[\s-]+", name) if part]
    stem = _stem(parts[-1]) if parts else None
    if stem is not None:
        parts[-1] = stem
    # A stem takes up to five more letters ("tortur" + "ed"); a whole word only a plural ending.
    ending = r"[a-z]{0,5}" if stem is not None else r"(?:s|es)?"
    # After "or"/"and" an article may come in: "Anorexia or eating disorders" is also "anorexia or an eating disorder".
    pattern = re.escape(parts[0]) if parts else ""
    for previous, part in itertools.pairwise(parts):
        pattern += (_AFTER_CONJUNCTION if previous in ("or", "and") else r"[\s-]?") + re.escape(part)
    return _OptionText(r"(?:the\s)?" + pattern + ending, parts[0] if parts else "")


def _may_hold(lowered: str | None, option: _OptionText) -> bool:
    """False only when a text cannot hold the option's text, so that no regex is compiled for it: ``lowered`` is
    the text in lower case when it is ASCII (None otherwise: case-insensitive matching then reaches beyond what
    ``str.lower`` maps, e.g. "\u017f" matches "s")."""
    return lowered is None or not option.required.isascii() or option.required in lowered


_AFTER_CONJUNCTION = r"[\s-]?(?:(?:an?|the)\s)?"


# Option texts vary per document (a run asks about 75 concepts in turn), more than the re module's own
# cache holds: their patterns are compiled once per process here, when of ordinary length (a dataset's
# huge option text is not kept).
_CACHED_PATTERN_CHARS = 1024


def _compile(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return _compile_cached(pattern, flags) if len(pattern) <= _CACHED_PATTERN_CHARS else re.compile(pattern, flags)


@functools.lru_cache(maxsize=4096)
def _compile_cached(pattern: str, flags: int) -> re.Pattern[str]:
    return re.compile(pattern, flags)


_cached_option_text = functools.lru_cache(maxsize=4096)(_build_option_text)


def _option_echoes(text: str, options: Mapping[str, str]) -> list[_Span]:
    """Options quoted with their letter: "A: Swastika", "(B) demonic figure", "C. Knife attacks"."""
    spans: list[_Span] = []
    lowered = text.lower() if text.isascii() else None
    for letter, name in options.items():
        if letter not in LETTERS or not name.strip():
            continue
        option = _option_text(name)
        if not _may_hold(lowered, option):
            continue
        pattern = _compile(rf"(?<![A-Za-z])[(\[]?{letter}\s?(?:[)\].:,]|\s-)\s?(?:-\s)?(?i:{option.pattern})(?![^\W_])")
        spans.extend(_Span(m.start(), m.end(), letter) for m in pattern.finditer(text))
    return sorted(spans)


def _echo_groups(spans: list[_Span]) -> list[list[_Span]]:
    """Runs of quoted options in letter order with only separators between them (a repeated list)."""
    groups: list[list[_Span]] = []
    for span in spans:
        if groups and span.letter > groups[-1][-1].letter and span.start - groups[-1][-1].end <= 12:
            groups[-1].append(span)
        else:
            groups.append([span])
    return groups


def _is_letter(text: str, start: int, letter: str) -> bool:
    """Whether the A-D at ``start`` is a letter rather than the article "a"/"A"."""
    if letter == "a":
        return not re.match(r"\s?[A-Za-z]", text[start + 1 : start + 3])
    if letter != "A":
        return True
    match = _ARTICLE_WORD.match(text, start + 1, start + 40)
    return not match or match.group(1) in _NOT_NOUNS


def _stated_letters(text: str) -> set[str]:
    """Letters given as the answer; "the answer is A or C" gives both."""
    letters = set()
    for pattern in (_STATED, _LETTER_FIRST):
        for match in pattern.finditer(text):
            letter = match.group("letter")
            if not _is_letter(text, match.start("letter"), letter):
                continue
            letters.add(letter.upper())
            if also := _ALSO_LETTER.match(text, match.end("letter"), match.end("letter") + 12):
                letters.add(also.group(1))
    for match in _CONCLUDED.finditer(text):
        if _is_letter(text, match.start("letter"), match.group("letter")):
            letters.add(match.group("letter").upper())
    return letters


def _leading_letters(text: str) -> set[str]:
    """The letter a response starts with: "B", "(C)", "D: ...", "Answer: A"."""
    match = _LEADING.match(text)
    if match and _is_letter(text, match.start("letter"), match.group("letter")):
        return {match.group("letter").upper()}
    return set()


def _negated(text: str, start: int) -> bool:
    """Whether what starts at ``start`` is negated: "not B", "rather than option C"."""
    return bool(_NEGATED_BEFORE.search(text[max(0, start - 25) : start].lower()))


def _mentioned_letters(text: str) -> set[str]:
    """Letters mentioned as options, not negated: "option D", "(A)", "the third option", "A and C both apply" (two)."""
    letters = {_ORDINAL_LETTER[m.group("ordinal").lower()] for m in _ORDINAL.finditer(text) if not _negated(text, m.start())}
    for match in _BOTH.finditer(text):
        letters.update(letter for letter in match.groups() if letter)
    for match in _MENTIONED.finditer(text):
        if _negated(text, match.start()):
            continue
        if match.group("paren"):
            letters.add(match.group("paren"))
        elif _is_letter(text, match.start("letter"), match.group("letter")):
            letters.add(match.group("letter").upper())
    return letters


def _named_options(text: str, options: Mapping[str, str]) -> set[str]:
    """Options whose text the response names, not negated ("not a swastika") and not inside a longer one."""
    spans: list[_Span] = []
    lowered = text.lower() if text.isascii() else None
    for letter, name in options.items():
        if letter in LETTERS and name.strip() and _may_hold(lowered, option := _option_text(name)):
            pattern = _compile(rf"(?<![^\W_]){option.pattern}(?![^\W_])", re.IGNORECASE)
            spans.extend(_Span(m.start(), m.end(), letter) for _, m in zip(range(_MAX_SPANS), pattern.finditer(text)))
    spans = [s for s in spans if not any(o.start <= s.start and s.end <= o.end and o != s for o in spans)]
    named: set[str] = set()
    negated_run = False
    for span in sorted(spans):
        before = text[max(0, span.start - 25) : span.start].lower()
        if _NEGATED_BEFORE.search(before) or (negated_run and _NEGATED_RUN.search(before)):
            negated_run = True
            continue
        negated_run = False
        named.add(span.letter)
    return named


def _lone_letters(text: str) -> set[str]:
    found = [m for m in _LONE_LETTER.finditer(text) if _is_letter(text, m.start(), m.group(1))]
    # A letter repeated many times is degenerate output, not an answer.
    if len(found) > 3:
        return set()
    # A negated letter is no answer, nor is one joined to it ("not A or B").
    letters: set[str] = set()
    negated_run, last_end = False, 0
    for match in found:
        between = text[last_end : match.start()]
        negated_run = _negated(text, match.start()) or (negated_run and len(between) <= 6 and bool(_NEGATED_RUN.search(between)))
        if not negated_run:
            letters.add(match.group(1))
        last_end = match.end()
    return letters
