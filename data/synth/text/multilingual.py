"""Five-way aligned template grammar: English sentences with faithful de/fr/es/it translations.

Each *frame* draws its lexical material once (subject, object, city, time ...)
and realises the same meaning in all five languages, with each language's own
word order (German verb-second with the participle at the end, Romance
adjectives after the noun) and agreement done by :mod:`data.synth.text.morph`.  The
frames therefore give speech-translation pairs, and each language side is also
a natural monolingual sentence for the ASR corpus.

This module holds the helpers every frame shares (subjects, noun phrases, places,
counts) and the frames about people (travel, activities, jobs, homes, languages);
:mod:`data.synth.text.things` holds the frames about objects, prices, weather and
transport, and :mod:`data.synth.text.everyday` the everyday-conversation ones.

Frames return raw strings ending in ``.``, ``?`` or ``!``;
:func:`aligned_example` applies the final clean-up (capitalisation, Spanish
``¿``/``¡``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .grammar import pick, resolve_gender
from .lexicon_multi import CITIES, COUNTABLES, JOBS, LANGUAGES, NAMES, PERSONS, PLACES
from .morph import MULTI_LANGS as L
from .morph import Entry, en_indefinite, es_and, fr_join, it_definite, noun_phrase
from .verbs_multi import ACTIVITIES, LOCATIONS, MOTION, TRAVEL_MODES, it_a, numbers, realise_activity, time_adverbial


@dataclass(frozen=True)
class Subject:
    """A realised third-person subject: nominative text per language plus natural sex."""

    text: dict
    sex: str

    @property
    def owner(self) -> str:
        """Possessor code for "his"/"her" agreeing with this subject."""
        return "3f" if self.sex == "f" else "3m"


def np(entry: Entry, **kw) -> dict:
    """Realise ``entry`` as a noun phrase in every language (see :func:`noun_phrase`)."""
    return {lang: noun_phrase(entry, lang, **kw) for lang in L}


def pick_subject(rng: random.Random, names_only: bool = False) -> Subject:
    """A name (Anna, Peter ...) or a person noun phrase (my brother, the teacher, our neighbour)."""
    if names_only or rng.random() < 0.55:
        name, sex = pick(rng, NAMES)
        return Subject({lang: name for lang in L}, sex)
    entry = pick(rng, PERSONS)
    if "role" in entry.tags:
        return Subject(np(entry, det="def"), entry.sex)
    # "our" only with friends/neighbours/colleagues: "our sister" is odd in most of the languages.
    owner = "1s" if "kin" in entry.tags else pick(rng, ("1s", "1s", "1p"))
    return Subject(np(entry, det="poss", owner=owner), entry.sex)


def _kin(rng: random.Random, sex: str = "") -> Entry:
    """A relative or friend; spouses are drawn of the sex opposite to ``sex``."""
    return pick(rng, tuple(e for e in PERSONS if ("kin" in e.tags or "friend" in e.tags)
                           and not ("spouse" in e.tags and e.sex == sex)))


def _count(rng: random.Random, lo: int, hi: int) -> int:
    # Numbers ending in "one" above twenty need noun-specific forms (veintiún, ventun), so skip them.
    while True:
        n = rng.randint(lo, hi)
        if n < 20 or n % 10 != 1:
            return n


def _agree(entry: Entry, lang: str, gender_source: str) -> str:
    """Masculine or feminine form of a two-form entry (adjective, job) by gender."""
    form = entry[lang]
    return form.pl if gender_source == "f" else form.sg


def place_dir(place: Entry, lang: str) -> str:
    """'to the station' in ``lang`` (zum Bahnhof, à la gare, a la estación, alla stazione)."""
    f = place[lang]
    if lang == "en":
        return f"to {f.sg}" if f.flags.get("bare") else f"to the {f.sg}"
    if lang == "de":
        prep = f.flags["dir"]
        return noun_phrase(place, "de", case="dat" if prep == "zu" else "acc", prep=prep)
    if lang == "it" and f.flags.get("bare"):
        return f"{f.flags['bare']} {f.sg}"
    return noun_phrase(place, lang, prep={"fr": "à", "es": "a", "it": "a"}[lang])


def place_loc(place: Entry, lang: str) -> str:
    """'at the station' in ``lang`` (am Bahnhof, à la gare, en la estación, alla stazione)."""
    f = place[lang]
    if lang == "en":
        if f.flags.get("bare"):
            return f"at {f.sg}"
        prep = "in" if f.flags.get("in") else "on" if f.flags.get("on") else "at"
        return f"{prep} the {f.sg}"
    if lang == "de":
        return noun_phrase(place, "de", case="dat", prep=f.flags["loc"])
    if lang == "es":
        return noun_phrase(place, "es", prep="en")
    return place_dir(place, lang)


_VISITABLE = tuple(p for p in PLACES if "nogo" not in p.tags)


def _front(rng: random.Random, p: float = 0.3) -> bool:
    return rng.random() < p


# ----------------------------------------------------------------------------- statements


def f_motion(rng: random.Random) -> dict:
    """Anna went to Munich by train yesterday."""
    verb = pick(rng, MOTION)
    tense = pick(rng, verb["tenses"])
    s, city, t = pick_subject(rng), pick(rng, CITIES), time_adverbial(rng, tense)
    mode = pick(rng, TRAVEL_MODES) if verb["modes"] and rng.random() < 0.4 else {k: "" for k in L}
    i = ("pres", "past", "fut").index(tense)
    en_v = verb["en"][i] if tense != "fut" else "will " + verb["en"][2]
    d_fin, d_part, d_aux, d_pp, d_inf, d_prep = verb["de"]
    fin, rest = {"pres": (d_fin, d_part), "past": (d_aux, d_pp), "fut": ("wird", d_inf)}[tense]
    v = {lang: resolve_gender(verb[lang][i], s.sex) for lang in ("fr", "es", "it")}
    c, S, T, M = {k: city[k].sg for k in L}, s.text, t, mode
    tail = {"en": f"{en_v} {c['en']} {M['en']}", "fr": f"{v['fr']} à {c['fr']} {M['fr']}",
            "es": f"{v['es']} a {c['es']} {M['es']}", "it": f"{v['it']} {it_a(c['it'])} {M['it']}"}
    if _front(rng):
        out = {k: f"{T[k]}{',' if k in ('en', 'fr') else ''} {S[k]} {tail[k]}." for k in ("en", "fr", "es", "it")}
        out["de"] = f"{T['de']} {fin} {S['de']} {M['de']} {d_prep} {c['de']} {rest}."
    else:
        out = {k: f"{S[k]} {tail[k]} {T[k]}." for k in ("en", "fr", "es", "it")}
        out["de"] = f"{S['de']} {fin} {T['de']} {M['de']} {d_prep} {c['de']} {rest}."
    return out


def f_go_place(rng: random.Random) -> dict:
    """My sister goes to the library every Monday."""
    tense = pick(rng, ("pres", "past", "fut"))
    s, place, T = pick_subject(rng), pick(rng, _VISITABLE), time_adverbial(rng, tense)
    d = {k: place_dir(place, k) for k in L}
    en = {"pres": "goes", "past": "went", "fut": "will go"}[tense]
    fin, rest = {"pres": ("geht", ""), "past": ("ist", "gegangen"), "fut": ("wird", "gehen")}[tense]
    fr, es, it = {"pres": ("va", "va", "va"), "past": ("est allé[|e]", "fue", "è andat[o|a]"),
                  "fut": ("ira", "irá", "andrà")}[tense]
    S = s.text
    return {"en": f"{S['en']} {en} {d['en']} {T['en']}.", "de": f"{S['de']} {fin} {T['de']} {d['de']} {rest}.",
            "fr": f"{S['fr']} {resolve_gender(fr, s.sex)} {d['fr']} {T['fr']}.",
            "es": f"{S['es']} {es} {d['es']} {T['es']}.",
            "it": f"{S['it']} {resolve_gender(it, s.sex)} {d['it']} {T['it']}."}


def f_be_at(rng: random.Random) -> dict:
    """Peter is at the museum right now. / Peter was at the museum yesterday."""
    tense = pick(rng, ("prog", "past"))
    s, place, T = pick_subject(rng), pick(rng, _VISITABLE), time_adverbial(rng, tense)
    loc = {k: place_loc(place, k) for k in L}
    v = {"prog": ("is", "ist", "est", "está", "è"), "past": ("was", "war", "était", "estuvo", "è stat[o|a]")}[tense]
    S = s.text
    out = {k: f"{S[k]} {resolve_gender(v[i], s.sex)} {loc[k]} {T[k]}." for i, k in enumerate(L)}
    out["de"] = f"{S['de']} {v[1]} {T['de']} {loc['de']}."
    return out


def f_activity(rng: random.Random) -> dict:
    """Anna is reading a book in the garden right now. / Mein Bruder hat gestern Tennis gespielt."""
    act = pick(rng, ACTIVITIES)
    tense = pick(rng, ("pres", "prog", "past", "fut"))
    s = pick_subject(rng)
    obj = pick(rng, act.objects).realise(rng, s.sex) if act.objects else {}
    pred = realise_activity(act, tense, obj, s.sex)
    T = time_adverbial(rng, tense)
    while act.en[3] in T["en"].split():  # no "works ... after work"
        T = time_adverbial(rng, tense)
    kind = pick(rng, act.locs)
    loc = pick(rng, LOCATIONS[kind]) if kind != "none" and rng.random() < 0.5 else {k: "" for k in L}
    comp = {k: "" for k in L}
    if not act.social and rng.random() < 0.2:
        kin = _kin(rng, s.sex)
        comp = {"en": f"with {noun_phrase(kin, 'en', det='poss', owner=s.owner)}",
                "de": f"mit {noun_phrase(kin, 'de', det='poss', case='dat', owner=s.owner)}",
                "fr": f"avec {noun_phrase(kin, 'fr', det='poss', owner=s.owner)}",
                "es": f"con {noun_phrase(kin, 'es', det='poss', owner=s.owner)}",
                "it": f"con {noun_phrase(kin, 'it', det='poss', owner=s.owner)}"}
    S = s.text
    fin, rest = pred["de"]
    if tense != "prog" and _front(rng, 0.25):
        out = {k: f"{T[k]}{',' if k in ('en', 'fr') else ''} {S[k]} {pred[k]} {comp[k]} {loc[k]}."
               for k in L if k != "de"}
        out["de"] = f"{T['de']} {fin} {S['de']} {comp['de']} {loc['de']} {rest}."
    else:
        out = {k: f"{S[k]} {pred[k]} {comp[k]} {loc[k]} {T[k]}." for k in L if k != "de"}
        out["de"] = f"{S['de']} {fin} {T['de']} {comp['de']} {loc['de']} {rest}."
    return out


_MODALS = (  # (present, past) per language
    {"en": ("has to", "had to"), "de": ("muss", "musste"), "fr": ("doit", "a dû"), "es": ("tiene que", "tuvo que"),
     "it": ("deve", "ha dovuto")},
    {"en": ("wants to", "wanted to"), "de": ("will", "wollte"), "fr": ("veut", "voulait"), "es": ("quiere", "quería"),
     "it": ("vuole", "voleva")},
    {"en": ("can", None), "de": ("kann", None), "fr": ("peut", None), "es": ("puede", None), "it": ("può", None)},
)


def f_modal(rng: random.Random) -> dict:
    """Thomas has to repair his bicycle tomorrow."""
    modal = pick(rng, _MODALS)
    past = modal["en"][1] is not None and rng.random() < 0.35
    act = pick(rng, ACTIVITIES)
    s = pick_subject(rng)
    obj = pick(rng, act.objects).realise(rng, s.sex) if act.objects else {}
    inf = realise_activity(act, "inf", obj, s.sex)
    T = time_adverbial(rng, "past" if past else "fut")
    m = {k: modal[k][1 if past else 0] for k in L}
    S = s.text
    out = {k: f"{S[k]} {m[k]} {inf[k]} {T[k]}." for k in L}
    out["de"] = f"{S['de']} {m['de']} {T['de']} {inf['de']}."
    return out


def f_count(rng: random.Random) -> dict:
    """Maria has three cats."""
    entry = pick(rng, COUNTABLES)
    n = _count(rng, 2, 40 if "farm" in entry.tags else 6)
    s, w = pick_subject(rng), numbers(n)
    p = {k: entry[k].pl for k in L}
    S = s.text
    return {"en": f"{S['en']} has {w['en']} {p['en']}.", "de": f"{S['de']} hat {w['de']} {p['de']}.",
            "fr": f"{S['fr']} a {w['fr']} {p['fr']}.", "es": f"{S['es']} tiene {w['es']} {p['es']}.",
            "it": f"{S['it']} ha {w['it']} {p['it']}."}


def f_age(rng: random.Random) -> dict:
    """Peter is forty-two years old. / How old is Peter?"""
    s = pick_subject(rng)
    S = s.text
    if rng.random() < 0.25:
        return {"en": f"How old is {S['en']}?", "de": f"Wie alt ist {S['de']}?", "fr": f"Quel âge a {S['fr']}?",
                "es": f"¿Cuántos años tiene {S['es']}?", "it": f"Quanti anni ha {S['it']}?"}
    w = numbers(_count(rng, 2, 95))
    return {"en": f"{S['en']} is {w['en']} years old.", "de": f"{S['de']} ist {w['de']} Jahre alt.",
            "fr": f"{S['fr']} a {w['fr']} ans.", "es": f"{S['es']} tiene {w['es']} años.",
            "it": f"{S['it']} ha {w['it']} anni."}


def f_job(rng: random.Random) -> dict:
    """Anna works as a nurse in Lyon. / Mein Onkel ist Koch. / Peter worked as a baker in Rome for ten years."""
    s, job, city = pick_subject(rng), pick(rng, JOBS), pick(rng, CITIES)
    j = {k: _agree(job, k, s.sex) for k in L}
    en_job = f"{en_indefinite(j['en'])} {j['en']}"
    c, S = {k: city[k].sg for k in L}, s.text
    roll = rng.random()
    if roll < 0.35:
        it_art = it_definite(s.sex, False, j["it"])
        it_job = it_art + j["it"] if it_art.endswith("'") else f"{it_art} {j['it']}"
        return {"en": f"{S['en']} is {en_job}.", "de": f"{S['de']} ist {j['de']}.", "fr": f"{S['fr']} est {j['fr']}.",
                "es": f"{S['es']} es {j['es']}.", "it": f"{S['it']} fa {it_job}."}
    if roll < 0.7:
        return {"en": f"{S['en']} works as {en_job} in {c['en']}.",
                "de": f"{S['de']} arbeitet als {j['de']} in {c['de']}.",
                "fr": f"{S['fr']} travaille comme {j['fr']} à {c['fr']}.",
                "es": f"{S['es']} trabaja como {j['es']} en {c['es']}.",
                "it": f"{S['it']} lavora come {j['it']} {it_a(c['it'])}."}
    w = numbers(_count(rng, 2, 30))
    return {"en": f"{S['en']} worked as {en_job} in {c['en']} for {w['en']} years.",
            "de": f"{S['de']} hat {w['de']} Jahre lang als {j['de']} in {c['de']} gearbeitet.",
            "fr": f"{S['fr']} a travaillé comme {j['fr']} à {c['fr']} pendant {w['fr']} ans.",
            "es": f"{S['es']} trabajó como {j['es']} en {c['es']} durante {w['es']} años.",
            "it": f"{S['it']} ha lavorato come {j['it']} {it_a(c['it'])} per {w['it']} anni."}


def f_lives(rng: random.Random) -> dict:
    """Anna lives in Vienna with her sister. / Has lived in Rome for ten years. / Does Peter live in Oslo?"""
    s, city = pick_subject(rng), pick(rng, CITIES)
    c, S = {k: city[k].sg for k in L}, s.text
    roll = rng.random()
    if roll < 0.2:
        return {"en": f"Does {S['en']} live in {c['en']}?", "de": f"Wohnt {S['de']} in {c['de']}?",
                "fr": f"Est-ce {fr_join('que', S['fr'])} habite à {c['fr']}?", "es": f"¿Vive {S['es']} en {c['es']}?",
                "it": f"{S['it']} vive {it_a(c['it'])}?"}
    if roll < 0.55:
        w = numbers(_count(rng, 2, 40))
        return {"en": f"{S['en']} has lived in {c['en']} for {w['en']} years.",
                "de": f"{S['de']} wohnt seit {w['de']} Jahren in {c['de']}.",
                "fr": f"{S['fr']} habite à {c['fr']} depuis {w['fr']} ans.",
                "es": f"{S['es']} vive en {c['es']} desde hace {w['es']} años.",
                "it": f"{S['it']} vive {it_a(c['it'])} da {w['it']} anni."}
    kin = _kin(rng, s.sex)
    k_ = {k: noun_phrase(kin, k, det="poss", case="dat", owner=s.owner) for k in L}
    return {"en": f"{S['en']} lives in {c['en']} with {k_['en']}.",
            "de": f"{S['de']} wohnt mit {k_['de']} in {c['de']}.",
            "fr": f"{S['fr']} habite à {c['fr']} avec {k_['fr']}.",
            "es": f"{S['es']} vive en {c['es']} con {k_['es']}.",
            "it": f"{S['it']} vive {it_a(c['it'])} con {k_['it']}."}


def f_speaks(rng: random.Random) -> dict:
    """Paul speaks Spanish and Italian. / Anna speaks German very well."""
    s = pick_subject(rng)
    a = pick(rng, LANGUAGES)
    b = pick(rng, tuple(x for x in LANGUAGES if x is not a))
    S = s.text
    if rng.random() < 0.4:
        return {"en": f"{S['en']} speaks {a['en'].sg} very well.", "de": f"{S['de']} spricht sehr gut {a['de'].sg}.",
                "fr": f"{S['fr']} parle très bien {a['fr'].sg}.", "es": f"{S['es']} habla muy bien {a['es'].sg}.",
                "it": f"{S['it']} parla molto bene {a['it'].sg}."}
    return {"en": f"{S['en']} speaks {a['en'].sg} and {b['en'].sg}.",
            "de": f"{S['de']} spricht {a['de'].sg} und {b['de'].sg}.",
            "fr": f"{S['fr']} parle {a['fr'].sg} et {b['fr'].sg}.",
            "es": f"{S['es']} habla {es_and(a['es'].sg, b['es'].sg)}.",
            "it": f"{S['it']} parla {a['it'].sg} e {b['it'].sg}."}
