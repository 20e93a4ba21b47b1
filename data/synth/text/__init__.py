"""Offline, deterministic sentence generators for the synthetic speech corpus.

Everything here is stdlib-only and driven by the ``random.Random`` passed in, so a
seeded generator reproduces the same text on every machine; numbers are always
spelled out because espeak-ng reads digit strings inconsistently.

Public API:
    ASR_LANGS: languages :func:`asr_sentence` supports.
    ST_TARGET_LANGS: translation targets of :func:`st_example` (source is English).
    asr_sentence(lang, rng): one natural sentence in ``lang``.
    st_example(rng): an English sentence with faithful de/fr/es/it translations.
    sqa_example(rng): a short English passage with extractive questions.
"""

from __future__ import annotations

import random

from .english import english_sentence
from .russian import russian_sentence
from .sqa import sqa_example
from .translation import ST_TARGET_LANGS, multilingual_sentence, st_example

ASR_LANGS: tuple[str, ...] = ("en", "de", "ru", "fr", "es", "it")

# Share of English ASR text drawn from the aligned grammar's English side; the
# rest comes from the richer monolingual English grammar.
_EN_ALIGNED_SHARE = 0.3


def asr_sentence(lang: str, rng: random.Random) -> str:
    """One natural sentence in ``lang``.

    Args:
        lang: One of :data:`ASR_LANGS`.
        rng: Random source; the same seeded generator yields the same sequence.

    Returns:
        A capitalised sentence ending in ``.``, ``?`` or ``!`` with no digits.

    Raises:
        ValueError: If ``lang`` is not supported (the message lists the supported ones).
    """
    if lang == "en":
        if rng.random() < _EN_ALIGNED_SHARE:
            return multilingual_sentence("en", rng)
        return english_sentence(rng)
    if lang == "ru":
        return russian_sentence(rng)
    if lang in ("de", "fr", "es", "it"):
        return multilingual_sentence(lang, rng)
    raise ValueError(f"unsupported language {lang!r}; supported languages: {', '.join(ASR_LANGS)}")


__all__ = ["ASR_LANGS", "ST_TARGET_LANGS", "asr_sentence", "sqa_example", "st_example"]
