"""Sampling from the aligned frames: speech-translation pairs and de/fr/es/it ASR sentences.

One weighted table of frames (:data:`FRAMES`) serves both uses, so the ASR text of
the Romance/German sides has exactly the coverage and quality of the
translation targets.  Weights favour the frames with the richest combinatorics
(activities, motion) and keep fixed phrases rare.
"""

from __future__ import annotations

import random

from .everyday import (
    f_belongings,
    f_directions,
    f_exclaim,
    f_gift,
    f_invite,
    f_meal,
    f_next_to,
    f_opening,
    f_order,
    f_phrase,
    f_request,
    f_state,
)
from .grammar import finish_sentence
from .morph import MULTI_LANGS
from .multilingual import (
    f_activity,
    f_age,
    f_be_at,
    f_count,
    f_go_place,
    f_job,
    f_lives,
    f_modal,
    f_motion,
    f_speaks,
)
from .things import f_price, f_there_are, f_thing_adj, f_thing_location, f_vehicle, f_weather

ST_TARGET_LANGS = ("de", "fr", "es", "it")

# (weight, frame).  Order matters for reproducibility: never build this from a set.
FRAMES = (
    (16, f_activity), (7, f_motion), (5, f_go_place), (3, f_be_at), (7, f_modal), (3, f_count),
    (2, f_there_are), (2, f_age), (4, f_price), (4, f_thing_adj), (4, f_thing_location), (4, f_weather),
    (4, f_vehicle), (4, f_job), (4, f_lives), (2, f_speaks), (5, f_state), (4, f_gift), (3, f_next_to),
    (3, f_opening), (2, f_order), (3, f_belongings), (1, f_exclaim), (2, f_request), (3, f_invite),
    (3, f_meal), (3, f_directions), (1, f_phrase),
)
_WEIGHTS = tuple(w for w, _ in FRAMES)
_FUNCS = tuple(f for _, f in FRAMES)


def finish_aligned(raw: dict) -> dict:
    """Clean every language side of a raw frame output.

    Spanish questions and exclamations get their opening ``¿``/``¡`` here unless
    the frame already placed one (e.g. after a leading "Perdone,").
    """
    out = {}
    for lang in MULTI_LANGS:
        text = finish_sentence(raw[lang])
        if lang == "es":
            if text.endswith("?") and "¿" not in text:
                text = finish_sentence("¿" + text)
            elif text.endswith("!") and "¡" not in text:
                text = finish_sentence("¡" + text)
        out[lang] = text
    return out


def aligned_example(rng: random.Random, frame=None) -> dict:
    """Draw one aligned sentence in en/de/fr/es/it.

    Args:
        rng: Random source (the only one used).
        frame: Optional frame function to force (used by tests); otherwise one is
            drawn by weight.

    Returns:
        ``{"en": ..., "de": ..., "fr": ..., "es": ..., "it": ...}``.
    """
    if frame is None:
        frame = rng.choices(_FUNCS, weights=_WEIGHTS, k=1)[0]
    return finish_aligned(frame(rng))


def st_example(rng: random.Random) -> dict[str, str]:
    """An English sentence and its translations into every language of :data:`ST_TARGET_LANGS`.

    Args:
        rng: Random source; the same seeded generator yields the same sequence.

    Returns:
        ``{"en": ..., "de": ..., "fr": ..., "es": ..., "it": ...}`` with meaning and
        named entities preserved across languages.
    """
    return aligned_example(rng)


def multilingual_sentence(lang: str, rng: random.Random) -> str:
    """One sentence in ``lang`` (one of en/de/fr/es/it) from the aligned grammar."""
    if lang not in MULTI_LANGS:
        raise ValueError(f"aligned grammar has no {lang!r}; supported: {', '.join(MULTI_LANGS)}")
    frame = rng.choices(_FUNCS, weights=_WEIGHTS, k=1)[0]
    raw = frame(rng)
    # Only the requested side is finished; realising all five keeps the rng stream
    # identical to st_example's, which makes debugging a sentence across languages easy.
    return finish_aligned(raw)[lang]
