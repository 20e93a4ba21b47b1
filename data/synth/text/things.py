"""Aligned frames about things around people: prices, looks and whereabouts of objects, weather, timetables.

Companion to :mod:`data.synth.text.multilingual` (the shared subject / place helpers and the frames about people)
and :mod:`data.synth.text.everyday`; all three export frame functions ``rng -> {lang: raw sentence}`` that
:mod:`data.synth.text.translation` samples from.
"""

from __future__ import annotations

import random

from .grammar import pick, resolve_gender
from .lexicon_multi import CITIES, FURNITURE, NAMES, OBJECTS, PLACES, THING_ADJS, VEHICLES, by_tag
from .morph import MULTI_LANGS as L
from .morph import Entry, fr_join, noun_phrase
from .multilingual import _agree, _count, np, pick_subject
from .verbs_multi import WEATHER, aligned, clock_time, it_a, numbers, time_adverbial


def f_there_are(rng: random.Random) -> dict:
    """There are twelve museums in Vienna."""
    place, city = pick(rng, by_tag(PLACES, "count")), pick(rng, CITIES)
    w, p, c = numbers(_count(rng, 2, 60)), {k: place[k].pl for k in L}, {k: city[k].sg for k in L}
    return {"en": f"There are {w['en']} {p['en']} in {c['en']}.", "de": f"In {c['de']} gibt es {w['de']} {p['de']}.",
            "fr": f"Il y a {w['fr']} {p['fr']} à {c['fr']}.", "es": f"Hay {w['es']} {p['es']} en {c['es']}.",
            "it": f"Ci sono {w['it']} {p['it']} {it_a(c['it'])}."}


def f_price(rng: random.Random) -> dict:
    """The red umbrella costs twenty euros. / Anna paid fifty euros for the lamp."""
    obj = pick(rng, OBJECTS[:33])
    adj = pick(rng, by_tag(THING_ADJS, "attr")) if rng.random() < 0.4 else None
    w = numbers(_count(rng, 2, 400))
    roll = rng.random()
    if roll < 0.2:
        o = np(obj, det="def")
        return {"en": f"How much does {o['en']} cost?", "de": f"Wie viel kostet {o['de']}?",
                "fr": f"Combien coûte {o['fr']}?", "es": f"¿Cuánto cuesta {o['es']}?", "it": f"Quanto costa {o['it']}?"}
    if roll < 0.45:
        s = pick_subject(rng)
        S = s.text
        o = {k: noun_phrase(obj, k, det="def", case="acc", adj=adj) for k in L}
        return {"en": f"{S['en']} paid {w['en']} euros for {o['en']}.",
                "de": f"{S['de']} hat {w['de']} Euro für {o['de']} bezahlt.",
                "fr": f"{S['fr']} a payé {w['fr']} euros pour {o['fr']}.",
                "es": f"{S['es']} pagó {w['es']} euros por {o['es']}.",
                "it": f"{S['it']} ha pagato {w['it']} euro per {o['it']}."}
    o = np(obj, det="def", adj=adj)
    if rng.random() < 0.5:
        return {"en": f"{o['en']} costs {w['en']} euros.", "de": f"{o['de']} kostet {w['de']} Euro.",
                "fr": f"{o['fr']} coûte {w['fr']} euros.", "es": f"{o['es']} cuesta {w['es']} euros.",
                "it": f"{o['it']} costa {w['it']} euro."}
    it_pp = resolve_gender("costat[o|a]", obj["it"].g)
    return {"en": f"{o['en']} cost {w['en']} euros.", "de": f"{o['de']} hat {w['de']} Euro gekostet.",
            "fr": f"{o['fr']} a coûté {w['fr']} euros.", "es": f"{o['es']} costó {w['es']} euros.",
            "it": f"{o['it']} è {it_pp} {w['it']} euro."}


_COLOURS = ("red", "black", "white", "green", "blue", "yellow", "grey", "brown")
_INTENS = tuple(aligned(x) for x in ("very ; sehr ; très ; muy ; molto",
                                     "quite ; ziemlich ; assez ; bastante ; piuttosto",
                                     "really ; wirklich ; vraiment ; realmente ; davvero"))


def _de_genitive(name: str) -> str:
    return f"{name}'" if name.endswith(("s", "x", "z")) else f"{name}s"


def f_thing_adj(rng: random.Random) -> dict:
    """The suitcase is very heavy. / Anna's umbrella was red. / Is the lamp expensive?"""
    obj, adj = pick(rng, OBJECTS), pick(rng, THING_ADJS)
    past = rng.random() < 0.3
    a = {k: _agree(adj, k, obj[k].g) if k != "de" else adj["de"].sg for k in L}
    a["en"] = adj["en"].sg
    if adj["en"].sg not in _COLOURS and rng.random() < 0.4:
        i = pick(rng, _INTENS)
        a = {k: f"{i[k]} {a[k]}" for k in L}
    estar = "estar" in adj.tags
    es_v = ("estaba" if past else "está") if estar else ("era" if past else "es")
    cop = {"en": "was" if past else "is", "de": "war" if past else "ist", "fr": "était" if past else "est",
           "es": es_v, "it": "era" if past else "è"}
    if not past and rng.random() < 0.2:
        o = np(obj, det="def")
        return {"en": f"Is {o['en']} {a['en']}?", "de": f"Ist {o['de']} {a['de']}?",
                "fr": f"Est-ce que {o['fr']} est {a['fr']}?", "es": f"¿{es_v} {a['es']} {o['es']}?",
                "it": f"{o['it']} è {a['it']}?"}
    if rng.random() < 0.35:
        name, _ = pick(rng, NAMES)
        o = {"en": f"{name}'s {obj['en'].sg}", "de": f"{_de_genitive(name)} {obj['de'].sg}",
             "fr": f"{noun_phrase(obj, 'fr', det='def')} {fr_join('de', name)}",
             "es": f"{noun_phrase(obj, 'es', det='def')} de {name}",
             "it": f"{noun_phrase(obj, 'it', det='def')} di {name}"}
    else:
        o = np(obj, det="def")
    return {k: f"{o[k]} {cop[k]} {a[k]}." for k in L}


_RELATIONS = {  # en, de (prep + dative), fr prefix, es (prefix, contracting prep), it (prefix, contracting prep)
    "on": ("on", "auf", "sur", ("", "en"), ("", "su")),
    "under": ("under", "unter", "sous", ("debajo", "de"), ("sotto", None)),
    "in": ("in", "in", "dans", ("", "en"), ("", "in")),
}


def _where(furn: Entry, rel: str) -> dict:
    en, de, fr, (es_pre, es_prep), (it_pre, it_prep) = _RELATIONS[rel]
    return {"en": f"{en} the {furn['en'].sg}", "de": noun_phrase(furn, "de", case="dat", prep=de),
            "fr": f"{fr} {noun_phrase(furn, 'fr')}",
            "es": f"{es_pre} {noun_phrase(furn, 'es', prep=es_prep)}".strip(),
            "it": f"{it_pre} {noun_phrase(furn, 'it', prep=it_prep)}".strip()}


def f_thing_location(rng: random.Random) -> dict:
    """The key is on the table. / Where is my wallet? / Anna found her key under the sofa."""
    obj, furn = pick(rng, by_tag(OBJECTS, "small")), pick(rng, FURNITURE)
    if obj["en"].sg == furn["en"].sg:
        furn = FURNITURE[0]
    rel = pick(rng, tuple(t for t in furn.tags if t in _RELATIONS))
    where = _where(furn, rel)
    roll = rng.random()
    if roll < 0.2:
        o = np(obj, det="poss", owner="1s")
        return {"en": f"Where is {o['en']}?", "de": f"Wo ist {o['de']}?", "fr": f"Où est {o['fr']}?",
                "es": f"¿Dónde está {o['es']}?", "it": f"Dov'è {o['it']}?"}
    if roll < 0.45:
        s = pick_subject(rng)
        S = s.text
        o = {k: noun_phrase(obj, k, det="poss", case="acc", owner=s.owner) for k in L}
        return {"en": f"{S['en']} found {o['en']} {where['en']}.",
                "de": f"{S['de']} hat {o['de']} {where['de']} gefunden.",
                "fr": f"{S['fr']} a trouvé {o['fr']} {where['fr']}.",
                "es": f"{S['es']} encontró {o['es']} {where['es']}.",
                "it": f"{S['it']} ha trovato {o['it']} {where['it']}."}
    o = np(obj, det=pick(rng, ("def", "def", "poss")), owner="1s")
    if roll < 0.6:
        return {"en": f"Is {o['en']} {where['en']}?", "de": f"Liegt {o['de']} {where['de']}?",
                "fr": f"Est-ce que {o['fr']} est {where['fr']}?", "es": f"¿Está {o['es']} {where['es']}?",
                "it": f"{o['it']} è {where['it']}?"}
    past = rng.random() < 0.3
    v = ("was", "lag", "était", "estaba", "era") if past else ("is", "liegt", "est", "está", "è")
    return {k: f"{o[k]} {v[i]} {where[k]}." for i, k in enumerate(L)}


def f_weather(rng: random.Random) -> dict:
    """It will rain in Hamburg tomorrow. / In Hamburg wird es morgen regnen."""
    tense = pick(rng, ("pres", "past", "fut"))
    i = ("pres", "past", "fut").index(tense)
    en, de, fr, es, it = pick(rng, WEATHER)
    city = pick(rng, CITIES)
    c = {k: city[k].sg for k in L}
    if tense == "pres":
        T = pick(rng, tuple(aligned(x) for x in ("today ; heute ; aujourd'hui ; hoy ; oggi",
                                                 "at the moment ; im Moment ; en ce moment ; ahora ; adesso")))
    else:
        T = time_adverbial(rng, tense)
    fin, rest = de[i]
    return {"en": f"{en[i]} in {c['en']} {T['en']}.", "de": f"In {c['de']} {fin} {T['de']} {rest}.",
            "fr": f"{fr[i]} à {c['fr']} {T['fr']}.", "es": f"{es[i]} en {c['es']} {T['es']}.",
            "it": f"{it[i]} {it_a(c['it'])} {T['it']}."}


def f_vehicle(rng: random.Random) -> dict:
    """The train to Munich leaves at half past seven. / What time does the bus from Rome arrive?"""
    veh = pick(rng, VEHICLES)
    city = pick(rng, by_tag(CITIES, "port") if veh["en"].sg == "ferry" else CITIES)
    air = "air" in veh.tags
    leave = rng.random() < 0.5
    c = {k: city[k].sg for k in L}
    if leave:
        v = np(veh, det="def")
        v = {"en": f"{v['en']} to {c['en']}", "de": f"{v['de']} nach {c['de']}", "fr": f"{v['fr']} pour {c['fr']}",
             "es": f"{v['es']} para {c['es']}", "it": f"{v['it']} per {c['it']}"}
    else:
        v = np(veh, det="def")
        v = {"en": f"{v['en']} from {c['en']}", "de": f"{v['de']} aus {c['de']}",
             "fr": f"{v['fr']} {fr_join('de', c['fr'])}",
             "es": f"{v['es']} de {c['es']}", "it": f"{v['it']} da {c['it']}"}
    if rng.random() < 0.25:
        if leave:
            de_fin, de_rest = ("fliegt", "ab") if air else ("fährt", "ab")
            vb = ("leave", de_fin, de_rest, "part", "sale", "parte")
        else:
            vb = ("arrive", "landet" if air else "kommt", "" if air else "an", "arrive", "llega", "arriva")
        return {"en": f"What time does {v['en']} {vb[0]}?", "de": f"Um wie viel Uhr {vb[1]} {v['de']} {vb[2]}?",
                "fr": f"À quelle heure {vb[3]} {v['fr']}?", "es": f"¿A qué hora {vb[4]} {v['es']}?",
                "it": f"A che ora {vb[5]} {v['it']}?"}
    past = rng.random() < 0.35
    T = clock_time(rng)
    g_fr, g_it = veh["fr"].g, veh["it"].g
    if leave:
        forms = (("left", "ist", "abgeflogen" if air else "abgefahren", "est parti[|e]", "salió", "è partit[o|a]")
                 if past else ("leaves", "fliegt" if air else "fährt", "ab", "part", "sale", "parte"))
    else:
        forms = (("arrived", "ist", "gelandet" if air else "angekommen", "est arrivé[|e]", "llegó", "è arrivat[o|a]")
                 if past else ("arrives", "landet" if air else "kommt", "" if air else "an", "arrive", "llega",
                               "arriva"))
    en, fin, rest, fr, es, it = forms
    return {"en": f"{v['en']} {en} {T['en']}.", "de": f"{v['de']} {fin} {T['de']} {rest}.",
            "fr": f"{v['fr']} {resolve_gender(fr, g_fr)} {T['fr']}.", "es": f"{v['es']} {es} {T['es']}.",
            "it": f"{v['it']} {resolve_gender(it, g_it)} {T['it']}."}
