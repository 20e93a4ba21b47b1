"""Everyday-conversation frames of the aligned grammar: feelings, gifts, shopping, directions, requests.

Companion to :mod:`data.synth.text.multilingual` (people, places and activities) and
:mod:`data.synth.text.things` (objects, prices, weather, transport); all three
export frame functions ``rng -> {lang: raw sentence}`` that
:mod:`data.synth.text.translation` samples from.
"""

from __future__ import annotations

import random

from .grammar import pick, resolve_gender
from .lexicon_multi import COUNT_FOOD, LANGUAGES, MASS_FOOD, OBJECTS, PLACES, STATE_ADJS, THING_ADJS, WEEKDAYS, by_tag
from .morph import MULTI_LANGS as L
from .morph import es_and, fr_elides, fr_join, it_definite, noun_phrase, parse_entry
from .multilingual import _count, _kin, np, pick_subject, place_dir
from .verbs_multi import ACTIVITIES, aligned, clock_time, numbers, realise_activity, time_adverbial

_STATE_TIMES = {
    False: tuple(aligned(x) for x in ("today ; heute ; aujourd'hui ; hoy ; oggi",
                                      "this evening ; heute Abend ; ce soir ; esta tarde ; stasera",
                                      "at the moment ; im Moment ; en ce moment ; ahora ; adesso")),
    True: tuple(aligned(x) for x in ("yesterday ; gestern ; hier ; ayer ; ieri",
                                     "yesterday evening ; gestern Abend ; hier soir ; ayer por la tarde ; ieri sera",
                                     "after the exam ; nach der Prüfung ; après l'examen ; después del examen ; "
                                     "dopo l'esame",
                                     "last week ; letzte Woche ; la semaine dernière ; la semana pasada ; "
                                     "la settimana scorsa")),
}
_DEGREE = tuple(aligned(x) for x in ("very ; sehr ; très ; muy ; molto",
                                     "a little ; ein bisschen ; un peu ; un poco ; un po'",
                                     "quite ; ziemlich ; assez ; bastante ; piuttosto"))

# Physical states expressed with "have" outside English: (present, past) per language,
# German as (finite, rest) so the time adverb can sit between them.
_HAVE_STATES = (
    (("is hungry", "was hungry"), (("hat", "Hunger"), ("hatte", "Hunger")), ("a faim", "avait faim"),
     ("tiene hambre", "tenía hambre"), ("ha fame", "aveva fame")),
    (("is thirsty", "was thirsty"), (("hat", "Durst"), ("hatte", "Durst")), ("a soif", "avait soif"),
     ("tiene sed", "tenía sed"), ("ha sete", "aveva sete")),
    (("is cold", "was cold"), (("friert", ""), ("fror", "")), ("a froid", "avait froid"),
     ("tiene frío", "tenía frío"), ("ha freddo", "aveva freddo")),
    (("is in a hurry", "was in a hurry"), (("hat es", "eilig"), ("hatte es", "eilig")),
     ("est pressé[|e]", "était pressé[|e]"), ("tiene prisa", "tenía prisa"), ("ha fretta", "aveva fretta")),
)


def f_state(rng: random.Random) -> dict:
    """My sister is very tired today. / Why is Peter so nervous? / Anna was hungry yesterday."""
    s = pick_subject(rng)
    S, past = s.text, rng.random() < 0.35
    T = pick(rng, _STATE_TIMES[past])
    if rng.random() < 0.25:
        forms = pick(rng, _HAVE_STATES)
        i = int(past)
        fin, rest = forms[1][i]
        return {"en": f"{S['en']} {forms[0][i]} {T['en']}.", "de": f"{S['de']} {fin} {T['de']} {rest}.",
                "fr": f"{S['fr']} {resolve_gender(forms[2][i], s.sex)} {T['fr']}.",
                "es": f"{S['es']} {forms[3][i]} {T['es']}.", "it": f"{S['it']} {forms[4][i]} {T['it']}."}
    adj = pick(rng, STATE_ADJS)
    a = {k: resolve_gender(adj[i], s.sex) for i, k in enumerate(L)}
    if not past and rng.random() < 0.2:
        pron = "elle" if s.sex == "f" else "il"
        return {"en": f"Why is {S['en']} so {a['en']}?", "de": f"Warum ist {S['de']} so {a['de']}?",
                "fr": f"Pourquoi {S['fr']} est-{pron} si {a['fr']}?", "es": f"¿Por qué está {S['es']} tan {a['es']}?",
                "it": f"Perché {S['it']} è così {a['it']}?"}
    d = pick(rng, _DEGREE) if rng.random() < 0.6 else {k: "" for k in L}
    cop = ("was", "war", "était", "estaba", "era") if past else ("is", "ist", "est", "está", "è")
    out = {k: f"{S[k]} {cop[i]} {d[k]} {a[k]} {T[k]}." for i, k in enumerate(L)}
    out["de"] = f"{S['de']} {cop[1]} {T['de']} {d['de']} {a['de']}."
    return out


_OCCASIONS = (
    ("for [his|her] birthday", "zum Geburtstag", "pour son anniversaire", "por su cumpleaños", "per il suo compleanno"),
    ("for Christmas", "zu Weihnachten", "pour Noël", "por Navidad", "per Natale"),
)


def f_gift(rng: random.Random) -> dict:
    """Anna gave her sister a red scarf for her birthday."""
    s = pick_subject(rng)
    kin, obj = _kin(rng, s.sex), pick(rng, by_tag(OBJECTS, "gift"))
    adj = pick(rng, by_tag(THING_ADJS, "attr")) if rng.random() < 0.4 else None
    k = {lang: noun_phrase(kin, lang, det="poss", case="dat", owner=s.owner,
                           prep={"fr": "à", "es": "a", "it": "a"}.get(lang)) for lang in L}
    o = {lang: noun_phrase(obj, lang, det="indef", case="acc", adj=adj) for lang in L}
    occ = ({k_: resolve_gender(x, kin.sex) for k_, x in zip(L, pick(rng, _OCCASIONS))}
           if rng.random() < 0.4 else {k_: "" for k_ in L})
    S = s.text
    if rng.random() < 0.65:
        return {"en": f"{S['en']} gave {k['en']} {o['en']} {occ['en']}.",
                "de": f"{S['de']} hat {k['de']} {occ['de']} {o['de']} geschenkt.",
                "fr": f"{S['fr']} a offert {o['fr']} {k['fr']} {occ['fr']}.",
                "es": f"{S['es']} le regaló {o['es']} {k['es']} {occ['es']}.",
                "it": f"{S['it']} ha regalato {o['it']} {k['it']} {occ['it']}."}
    return {"en": f"{S['en']} will give {k['en']} {o['en']} {occ['en']}.",
            "de": f"{S['de']} wird {k['de']} {occ['de']} {o['de']} schenken.",
            "fr": f"{S['fr']} offrira {o['fr']} {k['fr']} {occ['fr']}.",
            "es": f"{S['es']} le regalará {o['es']} {k['es']} {occ['es']}.",
            "it": f"{S['it']} regalerà {o['it']} {k['it']} {occ['it']}."}


# en, de (+dative), fr (prefix, contracting prep), es (prefix, prep), it (prefix, prep)
_NEAR = (("next to", "neben", ("à côté", "de"), ("al lado", "de"), ("accanto", "a")),
         ("opposite", "gegenüber", ("en face", "de"), ("enfrente", "de"), ("di fronte", "a")),
         ("behind", "hinter", ("derrière", None), ("detrás", "de"), ("dietro", None)))


def f_next_to(rng: random.Random) -> dict:
    """There is a bakery next to the station. / The museum is opposite the church."""
    a = pick(rng, PLACES)
    b = pick(rng, tuple(p for p in PLACES if p is not a))
    en, de, (fr_pre, fr_p), (es_pre, es_p), (it_pre, it_p) = pick(rng, _NEAR)
    rel = {"en": f"{en} the {b['en'].sg}", "de": noun_phrase(b, "de", case="dat", prep=de),
           "fr": f"{fr_pre} {noun_phrase(b, 'fr', prep=fr_p)}", "es": f"{es_pre} {noun_phrase(b, 'es', prep=es_p)}",
           "it": f"{it_pre} {noun_phrase(b, 'it', prep=it_p)}"}
    if rng.random() < 0.5:
        o = {k: noun_phrase(a, k, det="indef", case="acc") for k in L}
        return {"en": f"There is {o['en']} {rel['en']}.", "de": f"{rel['de']} gibt es {o['de']}.",
                "fr": f"Il y a {o['fr']} {rel['fr']}.", "es": f"Hay {o['es']} {rel['es']}.",
                "it": f"C'è {o['it']} {rel['it']}."}
    o = np(a, det="def")
    return {"en": f"{o['en']} is {rel['en']}.", "de": f"{o['de']} ist {rel['de']}.",
            "fr": f"{o['fr']} est {rel['fr']}.",
            "es": f"{o['es']} está {rel['es']}.", "it": f"{o['it']} è {rel['it']}."}


def _habitual_day(day) -> dict:
    it_art = "la" if day["it"].g == "f" else "il"
    return {"en": f"on {day['en'].sg}s", "de": day["de"].pl, "fr": f"le {day['fr'].sg}", "es": f"los {day['es'].pl}",
            "it": f"{it_art} {day['it'].sg}"}


def f_opening(rng: random.Random) -> dict:
    """The museum opens at nine o'clock. / Sonntags ist die Apotheke geschlossen. / What time does the bank close?"""
    place = pick(rng, by_tag(PLACES, "open"))
    p = np(place, det="def")
    roll = rng.random()
    if roll < 0.25:
        day = _habitual_day(pick(rng, WEEKDAYS))
        g = {k: place[k].g for k in L}
        closed = {"fr": resolve_gender("fermé[|e]", g["fr"]), "es": resolve_gender("cerrad[o|a]", g["es"]),
                  "it": resolve_gender("chius[o|a]", g["it"])}
        return {"en": f"{p['en']} is closed {day['en']}.", "de": f"{day['de']} ist {p['de']} geschlossen.",
                "fr": f"{p['fr']} est {closed['fr']} {day['fr']}.", "es": f"{p['es']} está {closed['es']} {day['es']}.",
                "it": f"{p['it']} è {closed['it']} {day['it']}."}
    opens = rng.random() < 0.6
    v = ("opens", "öffnet", "ouvre", "abre", "apre") if opens else ("closes", "schließt", "ferme", "cierra", "chiude")
    if roll < 0.45:
        base = ("open", "Um wie viel Uhr öffnet") if opens else ("close", "Um wie viel Uhr schließt")
        return {"en": f"What time does {p['en']} {base[0]}?", "de": f"{base[1]} {p['de']}?",
                "fr": f"À quelle heure {v[2]} {p['fr']}?", "es": f"¿A qué hora {v[3]} {p['es']}?",
                "it": f"A che ora {v[4]} {p['it']}?"}
    T = clock_time(rng)
    if rng.random() < 0.4:
        day = _habitual_day(pick(rng, WEEKDAYS))
        return {"en": f"{p['en']} {v[0]} {T['en']} {day['en']}.", "de": f"{day['de']} {v[1]} {p['de']} {T['de']}.",
                "fr": f"{day['fr']}, {p['fr']} {v[2]} {T['fr']}.", "es": f"{day['es']} {p['es']} {v[3]} {T['es']}.",
                "it": f"{day['it']} {p['it']} {v[4]} {T['it']}."}
    return {k: f"{p[k]} {v[i]} {T[k]}." for i, k in enumerate(L)}


_AND = {"en": "and", "de": "und", "fr": "et", "es": "y", "it": "e"}  # Spanish goes through es_and (y/e)


def f_order(rng: random.Random) -> dict:
    """I would like a coffee and a croissant, please."""
    items = by_tag(COUNT_FOOD, "order")
    a = pick(rng, items)
    o = {k: noun_phrase(a, k, det="indef", case="acc") for k in L}
    if rng.random() < 0.5:
        b = pick(rng, tuple(x for x in items if x is not a))
        o2 = {k: noun_phrase(b, k, det="indef", case="acc") for k in L}
        o = {k: es_and(o[k], o2[k]) if k == "es" else f"{o[k]} {_AND[k]} {o2[k]}" for k in L}
    return {"en": f"I would like {o['en']}, please.", "de": f"Ich hätte gern {o['de']}, bitte.",
            "fr": f"Je voudrais {o['fr']}, s'il vous plaît.", "es": f"Quisiera {o['es']}, por favor.",
            "it": f"Vorrei {o['it']}, per favore."}


def _fr_nouveau(entry) -> str:
    """'un nouveau parapluie' / 'un nouvel ordinateur' / 'une nouvelle valise' (prenominal, so agreement is manual)."""
    f = entry["fr"]
    if f.g == "f":
        return f"une nouvelle {f.sg}"
    return f"un {'nouvel' if fr_elides(f.sg, bool(f.flags.get('h'))) else 'nouveau'} {f.sg}"


_NEW = next(a for a in THING_ADJS if a["en"].sg == "new")
_FORGOT_AT = tuple(aligned(x) for x in (
    "at home ; zu Hause ; à la maison ; en casa ; a casa",
    "on the train ; im Zug ; dans le train ; en el tren ; in treno",
    "on the bus ; im Bus ; dans le bus ; en el autobús ; sull'autobus",
    "at the office ; im Büro ; au bureau ; en la oficina ; in ufficio",
    "at the restaurant ; im Restaurant ; au restaurant ; en el restaurante ; al ristorante"))


def f_belongings(rng: random.Random) -> dict:
    """I need a new umbrella. / I have lost my key. / I left my scarf on the train. / Have you seen my phone?"""
    obj = pick(rng, by_tag(OBJECTS, "small"))
    roll = rng.random()
    if roll < 0.3:
        o = {k: noun_phrase(obj, k, det="indef", case="acc", adj=_NEW) for k in L}
        o["fr"] = fr_join("de", _fr_nouveau(obj))
        if rng.random() < 0.5:
            return {"en": f"I need {o['en']}.", "de": f"Ich brauche {o['de']}.", "fr": f"J'ai besoin {o['fr']}.",
                    "es": f"Necesito {o['es']}.", "it": f"Ho bisogno di {o['it']}."}
        return {"en": f"We need {o['en']}.", "de": f"Wir brauchen {o['de']}.", "fr": f"Nous avons besoin {o['fr']}.",
                "es": f"Necesitamos {o['es']}.", "it": f"Abbiamo bisogno di {o['it']}."}
    o = {k: noun_phrase(obj, k, det="poss", case="acc", owner="1s") for k in L}
    if roll < 0.55:
        return {"en": f"I have lost {o['en']}.", "de": f"Ich habe {o['de']} verloren.", "fr": f"J'ai perdu {o['fr']}.",
                "es": f"He perdido {o['es']}.", "it": f"Ho perso {o['it']}."}
    if roll < 0.8:
        w = pick(rng, _FORGOT_AT)
        return {"en": f"I left {o['en']} {w['en']}.", "de": f"Ich habe {o['de']} {w['de']} vergessen.",
                "fr": f"J'ai oublié {o['fr']} {w['fr']}.", "es": f"He olvidado {o['es']} {w['es']}.",
                "it": f"Ho dimenticato {o['it']} {w['it']}."}
    return {"en": f"Have you seen {o['en']}?", "de": f"Hast du {o['de']} gesehen?", "fr": f"Tu as vu {o['fr']}?",
            "es": f"¿Has visto {o['es']}?", "it": f"Hai visto {o['it']}?"}


_BEAUTIFUL = parse_entry("beautiful ; schön|schön ; beau|belle ; bonito|bonita ; bello|bella")
_IT_BELLO = {"il": "bel ", "lo": "bello ", "l'": "bell'", "la": "bella "}


def f_exclaim(rng: random.Random) -> dict:
    """What a beautiful scarf! (Was für ein schöner Schal! Quelle belle écharpe! Che bella sciarpa!)"""
    obj = pick(rng, by_tag(OBJECTS, "gift"))
    fr, it = obj["fr"], obj["it"]
    if fr.g == "f":
        fr_txt = f"Quelle belle {fr.sg}"
    else:
        fr_txt = f"Quel {'bel' if fr_elides(fr.sg, bool(fr.flags.get('h'))) else 'beau'} {fr.sg}"
    es_adj = "bonita" if obj["es"].g == "f" else "bonito"
    return {"en": f"What a beautiful {obj['en'].sg}!",
            "de": f"Was für {noun_phrase(obj, 'de', det='indef', adj=_BEAUTIFUL)}!", "fr": f"{fr_txt}!",
            "es": f"¡Qué {obj['es'].sg} tan {es_adj}!",
            "it": f"Che {_IT_BELLO[it_definite(it.g or 'm', False, it.sg)]}{it.sg}!"}


def f_request(rng: random.Random) -> dict:
    """Can you open the window, please? / Can you bring me the key, please?"""
    if rng.random() < 0.5:
        obj = pick(rng, by_tag(OBJECTS, "open"))
        o = {k: noun_phrase(obj, k, det="def", case="acc") for k in L}
        v = pick(rng, (("open", "öffnen", "ouvrir", "abrir", "aprire"),
                       ("close", "schließen", "fermer", "cerrar", "chiudere")))
        return {"en": f"Can you {v[0]} {o['en']}, please?", "de": f"Kannst du bitte {o['de']} {v[1]}?",
                "fr": f"Tu peux {v[2]} {o['fr']}, s'il te plaît?", "es": f"¿Puedes {v[3]} {o['es']}, por favor?",
                "it": f"Puoi {v[4]} {o['it']}, per favore?"}
    obj = pick(rng, by_tag(OBJECTS, "small"))
    o = {k: noun_phrase(obj, k, det="def", case="acc") for k in L}
    return {"en": f"Can you bring me {o['en']}, please?", "de": f"Kannst du mir bitte {o['de']} bringen?",
            "fr": f"Tu peux m'apporter {o['fr']}, s'il te plaît?", "es": f"¿Puedes traerme {o['es']}, por favor?",
            "it": f"Puoi portarmi {o['it']}, per favore?"}


def f_invite(rng: random.Random) -> dict:
    """Do you want to play tennis with me tomorrow?"""
    act = pick(rng, tuple(a for a in ACTIVITIES if not a.social))
    # No possessives: "his newspaper" would have no antecedent in a second-person question.
    obj = pick(rng, act.objects).realise(rng, "m", allow_poss=False) if act.objects else {}
    inf = realise_activity(act, "inf", obj, "m")
    T = time_adverbial(rng, "fut")
    return {"en": f"Do you want to {inf['en']} with me {T['en']}?", "de": f"Möchtest du {T['de']} mit mir {inf['de']}?",
            "fr": f"Tu veux {inf['fr']} avec moi {T['fr']}?", "es": f"¿Quieres {inf['es']} conmigo {T['es']}?",
            "it": f"Vuoi {inf['it']} con me {T['it']}?"}


_MEALS = tuple(aligned(x) for x in (
    "for breakfast ; zum Frühstück ; au petit déjeuner ; en el desayuno ; a colazione",
    "for lunch ; zum Mittagessen ; au déjeuner ; en la comida ; a pranzo",
    "for dinner ; zum Abendessen ; au dîner ; en la cena ; a cena"))


# Combinations people actually eat together (looked up by English name).
_MEAL_PAIRS = (("bread", "cheese"), ("bread", "butter"), ("bread", "honey"), ("bread", "ham"), ("rice", "fish"),
               ("rice", "chicken"), ("meat", "salad"), ("fish", "salad"), ("soup", "bread"), ("yoghurt", "honey"),
               ("ham", "cheese"), ("chicken", "salad"), ("cake", "chocolate"), ("fish", "rice"), ("cheese", "ham"))
_FOOD_BY_NAME = {e["en"].sg: e for e in MASS_FOOD}


def f_meal(rng: random.Random) -> dict:
    """Anna eats bread and cheese for breakfast. (Anna mange du pain et du fromage au petit déjeuner.)"""
    a, b = (_FOOD_BY_NAME[x] for x in pick(rng, _MEAL_PAIRS))
    s, meal, past = pick_subject(rng), pick(rng, _MEALS), rng.random() < 0.4
    T = time_adverbial(rng, "past") if past else {k: "" for k in L}
    while any(w in T["en"] for w in ("morning", "evening")):  # not "lunch ... yesterday morning"
        T = time_adverbial(rng, "past")
    bare = {k: f"{a[k].sg} {_AND[k]} {b[k].sg}" for k in L}
    bare["fr"] = f"{noun_phrase(a, 'fr', det='part')} et {noun_phrase(b, 'fr', det='part')}"
    bare["es"] = es_and(a["es"].sg, b["es"].sg)
    S, F = s.text, bare
    if past:
        return {"en": f"{S['en']} ate {F['en']} {meal['en']} {T['en']}.",
                "de": f"{S['de']} hat {T['de']} {meal['de']} {F['de']} gegessen.",
                "fr": f"{S['fr']} a mangé {F['fr']} {meal['fr']} {T['fr']}.",
                "es": f"{S['es']} comió {F['es']} {meal['es']} {T['es']}.",
                "it": f"{S['it']} ha mangiato {F['it']} {meal['it']} {T['it']}."}
    return {"en": f"{S['en']} eats {F['en']} {meal['en']}.", "de": f"{S['de']} isst {meal['de']} {F['de']}.",
            "fr": f"{S['fr']} mange {F['fr']} {meal['fr']}.", "es": f"{S['es']} come {F['es']} {meal['es']}.",
            "it": f"{S['it']} mangia {F['it']} {meal['it']}."}


def f_directions(rng: random.Random) -> dict:
    """Excuse me, where is the station? / Is there a pharmacy near here? / How do I get to the museum?"""
    place = pick(rng, PLACES)
    roll = rng.random()
    if roll < 0.4:
        p = np(place, det="def")
        if rng.random() < 0.5:
            return {"en": f"Excuse me, where is {p['en']}?", "de": f"Entschuldigung, wo ist {p['de']}?",
                    "fr": f"Excusez-moi, où est {p['fr']}?", "es": f"Perdone, ¿dónde está {p['es']}?",
                    "it": f"Scusi, dov'è {p['it']}?"}
        return {"en": f"Where is {p['en']}?", "de": f"Wo ist {p['de']}?", "fr": f"Où est {p['fr']}?",
                "es": f"¿Dónde está {p['es']}?", "it": f"Dov'è {p['it']}?"}
    if roll < 0.7:
        o = {k: noun_phrase(place, k, det="indef", case="acc") for k in L}
        return {"en": f"Is there {o['en']} near here?", "de": f"Gibt es hier in der Nähe {o['de']}?",
                "fr": f"Est-ce qu'il y a {o['fr']} près d'ici?", "es": f"¿Hay {o['es']} cerca de aquí?",
                "it": f"C'è {o['it']} qui vicino?"}
    d = {k: place_dir(place, k) for k in L}
    return {"en": f"How do I get {d['en']}?", "de": f"Wie komme ich {d['de']}?", "fr": f"Comment aller {d['fr']}?",
            "es": f"¿Cómo llego {d['es']}?", "it": f"Come arrivo {d['it']}?"}


_PHRASES = tuple(aligned(x) for x in (
    "Good morning, how are you? ; Guten Morgen, wie geht es dir? ; Bonjour, comment ça va? ; "
    "Buenos días, ¿cómo estás? ; Buongiorno, come stai?",
    "Thank you very much for your help. ; Vielen Dank für deine Hilfe. ; Merci beaucoup pour ton aide. ; "
    "Muchas gracias por tu ayuda. ; Grazie mille per il tuo aiuto.",
    "I don't understand the question. ; Ich verstehe die Frage nicht. ; Je ne comprends pas la question. ; "
    "No entiendo la pregunta. ; Non capisco la domanda.",
    "Could you speak more slowly, please? ; Könnten Sie bitte langsamer sprechen? ; "
    "Pourriez-vous parler plus lentement, s'il vous plaît? ; ¿Podría hablar más despacio, por favor? ; "
    "Potrebbe parlare più lentamente, per favore?",
    "Could I have the bill, please? ; Kann ich bitte die Rechnung haben? ; "
    "Je pourrais avoir l'addition, s'il vous plaît? ; ¿Me trae la cuenta, por favor? ; "
    "Posso avere il conto, per favore?",
    "See you tomorrow! ; Bis morgen! ; À demain! ; ¡Hasta mañana! ; A domani!",
    "What is your name? ; Wie heißt du? ; Comment tu t'appelles? ; ¿Cómo te llamas? ; Come ti chiami?",
    "Where is the nearest bus stop? ; Wo ist die nächste Bushaltestelle? ; Où est l'arrêt de bus le plus proche? ; "
    "¿Dónde está la parada de autobús más cercana? ; Dov'è la fermata dell'autobus più vicina?",
    "How long does the journey take? ; Wie lange dauert die Fahrt? ; Combien de temps dure le voyage? ; "
    "¿Cuánto dura el viaje? ; Quanto dura il viaggio?",
    "Happy birthday! ; Alles Gute zum Geburtstag! ; Joyeux anniversaire! ; ¡Feliz cumpleaños! ; Buon compleanno!",
    "Have a nice weekend! ; Schönes Wochenende! ; Bon week-end! ; ¡Buen fin de semana! ; Buon fine settimana!",
    "I don't know where the keys are. ; Ich weiß nicht, wo die Schlüssel sind. ; Je ne sais pas où sont les clés. ; "
    "No sé dónde están las llaves. ; Non so dove sono le chiavi.",
    "It doesn't matter. ; Das macht nichts. ; Ce n'est pas grave. ; No importa. ; Non importa.",
))


def f_phrase(rng: random.Random) -> dict:
    """Fixed everyday phrases, a table booking for N people, or "Do you speak Italian?"."""
    roll = rng.random()
    if roll < 0.35:
        w = numbers(_count(rng, 2, 12))
        return {"en": f"I would like to book a table for {w['en']} people.",
                "de": f"Ich möchte einen Tisch für {w['de']} Personen reservieren.",
                "fr": f"Je voudrais réserver une table pour {w['fr']} personnes.",
                "es": f"Quisiera reservar una mesa para {w['es']} personas.",
                "it": f"Vorrei prenotare un tavolo per {w['it']} persone."}
    if roll < 0.6:
        lang = pick(rng, LANGUAGES)
        return {"en": f"Do you speak {lang['en'].sg}?", "de": f"Sprechen Sie {lang['de'].sg}?",
                "fr": f"Parlez-vous {lang['fr'].sg}?", "es": f"¿Habla usted {lang['es'].sg}?",
                "it": f"Parla {lang['it'].sg}?"}
    return dict(pick(rng, _PHRASES))
