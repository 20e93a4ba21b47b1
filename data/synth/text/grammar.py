"""Small template machinery shared by every sentence generator in ``data.synth.text``.

Two things live here:

* :class:`Grammar`, a tiny context-free grammar whose rules map a symbol to
  alternatives; an alternative is a string that may contain further ``{symbol}``
  references, or a callable ``rng -> str`` for things a list cannot express
  (numbers, agreement).  Expansion draws only from the ``random.Random`` passed in,
  so a seeded generator reproduces the same text on every machine.
* :func:`finish_sentence`, the single place that turns a raw expansion into
  text espeak-ng reads well: whitespace collapsed, no space before punctuation,
  first letter upper-cased, final punctuation guaranteed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence

Expansion = str | Sequence[str] | Callable[[random.Random], str]

_SLOT = re.compile(r"\{(\w+)\}")
_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.?!;:])")
_OPENERS = "¿¡«\"'("


def pick(rng: random.Random, items: Sequence):
    """Return one element of ``items`` chosen uniformly with ``rng``.

    Args:
        rng: The random source; the only one ever used, for reproducibility.
        items: A non-empty sequence (lists/tuples; never sets, whose order varies).

    Returns:
        The chosen element.
    """
    return items[rng.randrange(len(items))]


class Grammar:
    """A tiny context-free grammar over strings.

    Rules map a symbol to a list of alternatives (strings that may reference other
    symbols as ``{name}``) or to a callable producing a string.  Unknown
    ``{name}`` references raise ``KeyError`` at expansion time so typos surface
    in tests rather than in generated corpora.
    """

    def __init__(self, rules: Mapping[str, Expansion], max_depth: int = 16) -> None:
        self.rules = dict(rules)
        self.max_depth = max_depth

    def add(self, symbol: str, expansion: Expansion) -> None:
        """Register (or replace) the rule for ``symbol``."""
        self.rules[symbol] = expansion

    def expand(self, text: str, rng: random.Random, depth: int = 0) -> str:
        """Recursively replace every ``{symbol}`` in ``text``.

        Args:
            text: A template string such as ``"{name} lives in {city}."``.
            rng: Random source for every choice.
            depth: Current recursion depth (internal).

        Returns:
            The expanded string (not yet cleaned; see :func:`finish_sentence`).
        """
        if depth > self.max_depth:
            raise RecursionError(f"grammar expansion too deep at {text!r}")

        def _sub(match: re.Match) -> str:
            return self.expand(self.symbol(match.group(1), rng), rng, depth + 1)

        return _SLOT.sub(_sub, text)

    def symbol(self, name: str, rng: random.Random) -> str:
        """Draw one raw alternative for ``name`` (without expanding it further)."""
        rule = self.rules[name]
        if callable(rule):
            return rule(rng)
        if isinstance(rule, str):
            return rule
        return pick(rng, rule)

    def vocabulary_hint(self) -> int:
        """Number of literal alternatives, a cheap proxy for lexicon size (debugging)."""
        return sum(len(r) for r in self.rules.values() if isinstance(r, (list, tuple)))


def capitalize_first(text: str) -> str:
    """Upper-case the first letter, skipping opening marks such as ``¿`` or ``«``."""
    for i, ch in enumerate(text):
        if ch in _OPENERS or ch.isspace():
            continue
        return text[:i] + ch.upper() + text[i + 1 :]
    return text


def clean_spacing(text: str) -> str:
    """Collapse whitespace and drop spaces before punctuation.

    Elided articles (``l'``, ``dell'``) are glued by :mod:`data.synth.text.morph` itself;
    a generic "apostrophe + space" rule would wrongly glue German ``Thomas' Hund``.
    """
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    # Spanish inverted marks hug the following word.
    return text.replace("¿ ", "¿").replace("¡ ", "¡")


def finish_sentence(text: str, end: str = ".") -> str:
    """Turn a raw expansion into a clean sentence.

    Args:
        text: The raw sentence, possibly with doubled spaces or a missing final mark.
        end: Punctuation to append when the text does not already end with one.

    Returns:
        The sentence with tidy spacing, an upper-case first letter and final
        punctuation (``.``, ``?`` or ``!``).
    """
    text = clean_spacing(text)
    text = text.rstrip(",;: ")
    if not text.endswith((".", "?", "!")):
        text += end
    return capitalize_first(text)


def resolve_gender(form: str, gender: str) -> str:
    """Resolve inline gender alternatives such as ``stanc[o|a]`` or ``allé[|e]``.

    Lexicon entries write agreeing endings as ``[masculine|feminine]`` so a single
    string covers both genders; this is how French/Italian past participles and
    Romance predicative adjectives agree with their subject.

    Args:
        form: Text containing zero or more ``[m|f]`` groups.
        gender: ``"m"`` or ``"f"`` (anything else is treated as masculine,
            the Romance default for mixed or unknown referents).

    Returns:
        The text with every group replaced by the chosen alternative.
    """
    idx = 1 if gender == "f" else 0
    return re.sub(r"\[([^\]|]*)\|([^\]]*)\]", lambda m: m.group(1 + idx), form)
