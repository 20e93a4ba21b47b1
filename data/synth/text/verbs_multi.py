"""Aligned verbs, time adverbials and weather predicates for en/de/fr/es/it.

Verb forms are stored fully inflected for the third person singular in every
tense a template uses, because Romance/German conjugation is irregular enough
that rules would be riskier than data.  Agreeing past participles carry inline
``[m|f]`` groups (``è andat[o|a]``, ``est allé[|e]``) resolved against the
subject by :func:`data.synth.text.grammar.resolve_gender`.

German forms are split into a finite part (verb-second position) and a rest
that goes to the end of the clause (participle, infinitive, separable particle),
so templates can place time and place adverbials in between as German requires.
"""

# ruff: noqa: E501  (aligned five-language verb lines read better unwrapped)

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from .grammar import pick, resolve_gender
from .lexicon_multi import COUNT_FOOD, COUNTABLES, LANGUAGES, OBJECTS, PERSONS, by_tag
from .morph import MULTI_LANGS, noun_phrase
from .numbers import number_words


def aligned(line: str) -> dict:
    """Split ``"en ; de ; fr ; es ; it"`` into a language -> text dict."""
    parts = [p.strip() for p in line.split(";")]
    if len(parts) != len(MULTI_LANGS):
        raise ValueError(f"expected 5 aligned segments: {line!r}")
    return dict(zip(MULTI_LANGS, parts))


@dataclass(frozen=True)
class ObjSpec:
    """How to realise the object of an activity.

    Either ``fixed`` aligned strings, or a choice among noun ``entries`` with one
    of the ``dets`` alternatives (a determiner name for all languages, or a
    per-language dict), German ``case`` and per-language ``prep`` (Spanish
    personal ``a``, French ``à`` that contracts to ``au``).
    """

    fixed: tuple = ()
    entries: tuple = ()
    dets: tuple = ("def",)
    case: str = "acc"
    prep: dict = field(default_factory=dict)

    def realise(self, rng: random.Random, sex: str, allow_poss: bool = True) -> dict:
        """Pick and realise the object for a subject of natural sex ``sex``.

        With ``allow_poss=False`` possessive determiners fall back to the definite
        article (for frames whose subject is not a third person).
        """
        if self.fixed:
            return {lang: resolve_gender(text, sex) for lang, text in pick(rng, self.fixed).items()}
        entry = pick(rng, self.entries)
        det = pick(rng, self.dets)
        if det == "poss" and not allow_poss:
            det = "def"
        owner = "3f" if sex == "f" else "3m"
        out = {}
        for lang in MULTI_LANGS:
            d = det[lang] if isinstance(det, dict) else det
            out[lang] = noun_phrase(entry, lang, det=d, case=self.case, prep=self.prep.get(lang), owner=owner)
        return out


def _fixed(*lines: str) -> ObjSpec:
    return ObjSpec(fixed=tuple(aligned(line) for line in lines))


@dataclass(frozen=True)
class Activity:
    """A verb phrase with per-tense forms in all five languages.

    Attributes:
        en: (3sg present, -ing, past, base).
        de: (finite present, perfect auxiliary, participle, infinitive, separable particle).
        fr: (present, passé composé, future, infinitive).
        es: (present, progressive, preterite, future, infinitive).
        it: (present, progressive, passato prossimo, future, infinitive).
        objects: Object alternatives (empty for intransitive verbs).
        locs: Location kinds that make sense (keys of :data:`LOCATIONS`).
        social: The object mentions the subject ("his mother"), so the phrase is
            only usable with a third-person subject.
    """

    en: tuple
    de: tuple
    fr: tuple
    es: tuple
    it: tuple
    objects: tuple = ()
    locs: tuple = ("home",)
    social: bool = False


def _act(line: str, *objects: ObjSpec, locs=("home",), social=False) -> Activity:
    # "|" separates forms, except inside an agreement group such as "è andat[o|a]".
    en, de, fr, es, it = (tuple(x.strip() for x in re.split(r"\|(?![^\[]*\])", seg)) for seg in line.split(";"))
    if len(de) == 4:
        de = de + ("",)
    return Activity(en, de, fr, es, it, tuple(objects), tuple(locs), social)


def realise_activity(act: Activity, tense: str, obj: dict, sex: str) -> dict:
    """Realise an activity's predicate in every language.

    Args:
        act: The activity.
        tense: ``pres`` (habitual), ``prog`` (in progress), ``past``, ``fut`` or
            ``inf`` (bare infinitive phrase for modals).
        obj: Realised object per language ("" entries for intransitives).
        sex: Subject's natural sex, for participle agreement.

    Returns:
        Language -> predicate.  German values are ``(finite, rest)`` pairs except
        for ``inf``, where the whole infinitive phrase is returned.
    """
    def o(lang: str) -> str:
        return obj.get(lang, "")

    en3, ing, past, base = act.en
    fin, aux, part, inf, particle = act.de
    fr_pres, fr_past, fr_fut, fr_inf = act.fr
    es_forms = dict(zip(("pres", "prog", "past", "fut", "inf"), act.es))
    it_forms = dict(zip(("pres", "prog", "past", "fut", "inf"), act.it))
    en = {"pres": en3, "prog": f"is {ing}", "past": past, "fut": f"will {base}", "inf": base}[tense]
    if tense in ("pres", "prog"):
        de = (fin, f"{o('de')} {particle}")
    elif tense == "past":
        de = (aux, f"{o('de')} {part}")
    elif tense == "fut":
        de = ("wird", f"{o('de')} {inf}")
    else:
        de = f"{o('de')} {inf}"
    if tense == "prog":
        # "est en train de lire" / "est en train d'écrire"
        fr = "est en train " + ("d'" + fr_inf if fr_inf[0] in "aeéèiouh" else "de " + fr_inf)
    else:
        fr = {"pres": fr_pres, "past": fr_past, "fut": fr_fut, "inf": fr_inf}[tense]
    out = {
        "en": f"{en} {o('en')}",
        "de": de,
        "fr": f"{fr} {o('fr')}",
        "es": f"{es_forms[tense]} {o('es')}",
        "it": f"{it_forms[tense]} {o('it')}",
    }
    return {k: (tuple(resolve_gender(x, sex).strip() for x in v) if isinstance(v, tuple)
                else resolve_gender(v, sex).strip()) for k, v in out.items()}


# Spouses are left out: "visits her husband" suggests they live apart.
_KIN = tuple(e for e in PERSONS if ("kin" in e.tags or "friend" in e.tags) and "spouse" not in e.tags)
_POSS = ("poss",)
_SMALL = by_tag(OBJECTS, "small")

ACTIVITIES = (
    _act("reads|reading|read|read ; liest|hat|gelesen|lesen ; lit|a lu|lira|lire ; "
         "lee|está leyendo|leyó|leerá|leer ; legge|sta leggendo|ha letto|leggerà|leggere",
         ObjSpec(entries=tuple(e for e in OBJECTS if e["en"].sg in ("book", "newspaper", "letter")),
                 dets=("indef", "def")), locs=("home", "out")),
    _act("writes|writing|wrote|write ; schreibt|hat|geschrieben|schreiben ; écrit|a écrit|écrira|écrire ; "
         "escribe|está escribiendo|escribió|escribirá|escribir ; scrive|sta scrivendo|ha scritto|scriverà|scrivere",
         _fixed("a letter ; einen Brief ; une lettre ; una carta ; una lettera",
                "an email ; eine E-Mail ; un e-mail ; un correo electrónico ; un'e-mail",
                "a long letter ; einen langen Brief ; une longue lettre ; una carta larga ; una lunga lettera",
                "a postcard ; eine Postkarte ; une carte postale ; una postal ; una cartolina"),
         locs=("home", "out")),
    _act("looks for|looking for|looked for|look for ; sucht|hat|gesucht|suchen ; cherche|a cherché|cherchera|chercher ; "
         "busca|está buscando|buscó|buscará|buscar ; cerca|sta cercando|ha cercato|cercherà|cercare",
         ObjSpec(entries=_SMALL, dets=("poss", "def")), locs=("home",)),
    _act("washes|washing|washed|wash ; wäscht|hat|gewaschen|waschen ; lave|a lavé|lavera|laver ; "
         "lava|está lavando|lavó|lavará|lavar ; lava|sta lavando|ha lavato|laverà|lavare",
         ObjSpec(entries=tuple(e for e in OBJECTS if e["en"].sg in ("car", "bicycle", "shirt", "dress", "jacket")),
                 dets=("poss", "def")), locs=("none",)),
    _act("repairs|repairing|repaired|repair ; repariert|hat|repariert|reparieren ; répare|a réparé|réparera|réparer ; "
         "arregla|está arreglando|arregló|arreglará|arreglar ; ripara|sta riparando|ha riparato|riparerà|riparare",
         ObjSpec(entries=tuple(e for e in OBJECTS if e["en"].sg in (
             "bicycle", "car", "lamp", "watch", "phone", "laptop", "camera", "suitcase")), dets=("poss", "def")),
         locs=("home",)),
    _act("paints|painting|painted|paint ; malt|hat|gemalt|malen ; peint|a peint|peindra|peindre ; "
         "pinta|está pintando|pintó|pintará|pintar ; dipinge|sta dipingendo|ha dipinto|dipingerà|dipingere",
         _fixed("a picture ; ein Bild ; un tableau ; un cuadro ; un quadro",
                "a portrait ; ein Porträt ; un portrait ; un retrato ; un ritratto"), locs=("home", "out")),
    _act("cooks|cooking|cooked|cook ; kocht|hat|gekocht|kochen ; prépare|a préparé|préparera|préparer ; "
         "prepara|está preparando|preparó|preparará|preparar ; prepara|sta preparando|ha preparato|preparerà|preparare",
         _fixed("dinner ; das Abendessen ; le dîner ; la cena ; la cena",
                "lunch ; das Mittagessen ; le déjeuner ; la comida ; il pranzo",
                "breakfast ; das Frühstück ; le petit déjeuner ; el desayuno ; la colazione",
                "a soup ; eine Suppe ; une soupe ; una sopa ; una zuppa",
                "a fish soup ; eine Fischsuppe ; une soupe de poisson ; una sopa de pescado ; una zuppa di pesce"),
         locs=("kitchen",)),
    _act("bakes|baking|baked|bake ; backt|hat|gebacken|backen ; fait|a fait|fera|faire ; "
         "hace|está haciendo|hizo|hará|hacer ; fa|sta facendo|ha fatto|farà|fare",
         _fixed("a cake ; einen Kuchen ; un gâteau ; una tarta ; una torta",
                "bread ; Brot ; du pain ; pan ; il pane",
                "an apple pie ; einen Apfelkuchen ; une tarte aux pommes ; una tarta de manzana ; una torta di mele",
                "biscuits ; Kekse ; des biscuits ; galletas ; dei biscotti"), locs=("kitchen",)),
    _act("watches|watching|watched|watch ; sieht|hat|gesehen|sehen ; regarde|a regardé|regardera|regarder ; "
         "ve|está viendo|vio|verá|ver ; guarda|sta guardando|ha guardato|guarderà|guardare",
         _fixed("a film ; einen Film ; un film ; una película ; un film",
                "a football match ; ein Fußballspiel ; un match de football ; un partido de fútbol ; una partita di calcio",
                "a documentary ; eine Dokumentation ; un documentaire ; un documental ; un documentario",
                "the news ; die Nachrichten ; les informations ; las noticias ; il telegiornale"), locs=("home",)),
    _act("listens to|listening to|listened to|listen to ; hört|hat|gehört|hören ; écoute|a écouté|écoutera|écouter ; "
         "escucha|está escuchando|escuchó|escuchará|escuchar ; ascolta|sta ascoltando|ha ascoltato|ascolterà|ascoltare",
         _fixed("music ; Musik ; de la musique ; música ; la musica",
                "the radio ; Radio ; la radio ; la radio ; la radio",
                "a podcast ; einen Podcast ; un podcast ; un pódcast ; un podcast",
                "classical music ; klassische Musik ; de la musique classique ; música clásica ; la musica classica"),
         locs=("home", "out")),
    _act("plays|playing|played|play ; spielt|hat|gespielt|spielen ; joue|a joué|jouera|jouer ; "
         "juega|está jugando|jugó|jugará|jugar ; gioca|sta giocando|ha giocato|giocherà|giocare",
         _fixed("football ; Fußball ; au football ; al fútbol ; a calcio",
                "tennis ; Tennis ; au tennis ; al tenis ; a tennis",
                "basketball ; Basketball ; au basket ; al baloncesto ; a pallacanestro",
                "volleyball ; Volleyball ; au volley ; al voleibol ; a pallavolo",
                "chess ; Schach ; aux échecs ; al ajedrez ; a scacchi",
                "cards ; Karten ; aux cartes ; a las cartas ; a carte"), locs=("sport",)),
    _act("plays|playing|played|play ; spielt|hat|gespielt|spielen ; joue|a joué|jouera|jouer ; "
         "toca|está tocando|tocó|tocará|tocar ; suona|sta suonando|ha suonato|suonerà|suonare",
         _fixed("the piano ; Klavier ; du piano ; el piano ; il pianoforte",
                "the guitar ; Gitarre ; de la guitare ; la guitarra ; la chitarra",
                "the violin ; Geige ; du violon ; el violín ; il violino",
                "the flute ; Flöte ; de la flûte ; la flauta ; il flauto"), locs=("home",)),
    _act("studies for|studying for|studied for|study for ; lernt|hat|gelernt|lernen ; révise|a révisé|révisera|réviser ; "
         "estudia para|está estudiando para|estudió para|estudiará para|estudiar para ; "
         "studia per|sta studiando per|ha studiato per|studierà per|studiare per",
         _fixed("the exam ; für die Prüfung ; pour l'examen ; el examen ; l'esame",
                "the maths test ; für den Mathetest ; pour le contrôle de maths ; el examen de matemáticas ; "
                "il compito di matematica"), locs=("home", "out")),
    _act("learns|learning|learned|learn ; lernt|hat|gelernt|lernen ; apprend|a appris|apprendra|apprendre ; "
         "aprende|está aprendiendo|aprendió|aprenderá|aprender ; impara|sta imparando|ha imparato|imparerà|imparare",
         ObjSpec(entries=LANGUAGES, dets=({"en": "bare", "de": "bare", "fr": "def", "es": "bare", "it": "def"},)),
         locs=("home", "out")),
    _act("drinks|drinking|drank|drink ; trinkt|hat|getrunken|trinken ; boit|a bu|boira|boire ; "
         "toma|está tomando|tomó|tomará|tomar ; beve|sta bevendo|ha bevuto|berrà|bere",
         ObjSpec(entries=tuple(e for e in COUNT_FOOD if e["en"].sg in ("coffee", "tea", "beer", "orange juice")),
                 dets=("indef",)), locs=("home", "out")),
    _act("eats|eating|ate|eat ; isst|hat|gegessen|essen ; mange|a mangé|mangera|manger ; "
         "come|está comiendo|comió|comerá|comer ; mangia|sta mangiando|ha mangiato|mangerà|mangiare",
         ObjSpec(entries=by_tag(COUNT_FOOD, "eat"), dets=("indef",)), locs=("home", "out")),
    _act("visits|visiting|visited|visit ; besucht|hat|besucht|besuchen ; rend visite|a rendu visite|rendra visite|rendre visite ; "
         "visita|está visitando|visitó|visitará|visitar ; va a trovare|sta andando a trovare|è andat[o|a] a trovare|"
         "andrà a trovare|andare a trovare",
         ObjSpec(entries=_KIN, dets=_POSS, prep={"fr": "à", "es": "a"}), locs=("none",), social=True),
    _act("calls|calling|called|call ; ruft|hat|angerufen|anrufen|an ; appelle|a appelé|appellera|appeler ; "
         "llama|está llamando|llamó|llamará|llamar ; chiama|sta chiamando|ha chiamato|chiamerà|chiamare",
         ObjSpec(entries=_KIN, dets=_POSS, prep={"es": "a"}), locs=("none",), social=True),
    _act("helps|helping|helped|help ; hilft|hat|geholfen|helfen ; aide|a aidé|aidera|aider ; "
         "ayuda|está ayudando|ayudó|ayudará|ayudar ; aiuta|sta aiutando|ha aiutato|aiuterà|aiutare",
         ObjSpec(entries=_KIN, dets=_POSS, case="dat", prep={"es": "a"}), locs=("none",), social=True),
    _act("feeds|feeding|fed|feed ; füttert|hat|gefüttert|füttern ; donne à manger|a donné à manger|"
         "donnera à manger|donner à manger ; da de comer|está dando de comer|dio de comer|dará de comer|dar de comer ; "
         "dà da mangiare|sta dando da mangiare|ha dato da mangiare|darà da mangiare|dare da mangiare",
         ObjSpec(entries=COUNTABLES[:9], dets=("def", "poss"), prep={"fr": "à", "es": "a", "it": "a"}),
         locs=("garden",), social=True),
    _act("sleeps|sleeping|slept|sleep ; schläft|hat|geschlafen|schlafen ; dort|a dormi|dormira|dormir ; "
         "duerme|está durmiendo|durmió|dormirá|dormir ; dorme|sta dormendo|ha dormito|dormirà|dormire", locs=("home",)),
    _act("works|working|worked|work ; arbeitet|hat|gearbeitet|arbeiten ; travaille|a travaillé|travaillera|travailler ; "
         "trabaja|está trabajando|trabajó|trabajará|trabajar ; lavora|sta lavorando|ha lavorato|lavorerà|lavorare",
         locs=("home", "out")),
    _act("swims|swimming|swam|swim ; schwimmt|ist|geschwommen|schwimmen ; nage|a nagé|nagera|nager ; "
         "nada|está nadando|nadó|nadará|nadar ; nuota|sta nuotando|ha nuotato|nuoterà|nuotare", locs=("water",)),
    _act("runs|running|ran|run ; läuft|ist|gelaufen|laufen ; court|a couru|courra|courir ; "
         "corre|está corriendo|corrió|correrá|correr ; corre|sta correndo|ha corso|correrà|correre", locs=("sport",)),
    _act("does|doing|did|do ; macht|hat|gemacht|machen ; fait|a fait|fera|faire ; "
         "hace|está haciendo|hizo|hará|hacer ; fa|sta facendo|ha fatto|farà|fare",
         _fixed("[his|her] homework ; [seine|ihre] Hausaufgaben ; ses devoirs ; los deberes ; i compiti"),
         locs=("home",), social=True),
    _act("takes|taking|took|take ; macht|hat|gemacht|machen ; prend|a pris|prendra|prendre ; "
         "saca|está sacando|sacó|sacará|sacar ; fa|sta facendo|ha fatto|farà|fare",
         _fixed("photos ; Fotos ; des photos ; fotos ; delle foto"), locs=("out", "sport")),
    _act("cleans|cleaning|cleaned|clean ; putzt|hat|geputzt|putzen ; nettoie|a nettoyé|nettoiera|nettoyer ; "
         "limpia|está limpiando|limpió|limpiará|limpiar ; pulisce|sta pulendo|ha pulito|pulirà|pulire",
         _fixed("the kitchen ; die Küche ; la cuisine ; la cocina ; la cucina",
                "the bathroom ; das Bad ; la salle de bains ; el baño ; il bagno",
                "the windows ; die Fenster ; les fenêtres ; las ventanas ; le finestre"), locs=("none",)),
    _act("waters|watering|watered|water ; gießt|hat|gegossen|gießen ; arrose|a arrosé|arrosera|arroser ; "
         "riega|está regando|regó|regará|regar ; annaffia|sta annaffiando|ha annaffiato|annaffierà|annaffiare",
         _fixed("the flowers ; die Blumen ; les fleurs ; las flores ; i fiori",
                "the plants ; die Pflanzen ; les plantes ; las plantas ; le piante"), locs=("garden",)),
)

# Location phrases by kind; "home"/"out" are also used for "be at" sentences.
LOCATIONS = {
    "home": tuple(aligned(x) for x in (
        "in the garden ; im Garten ; dans le jardin ; en el jardín ; in giardino",
        "in the kitchen ; in der Küche ; dans la cuisine ; en la cocina ; in cucina",
        "in the living room ; im Wohnzimmer ; dans le salon ; en el salón ; in soggiorno",
        "at home ; zu Hause ; à la maison ; en casa ; a casa",
        "on the balcony ; auf dem Balkon ; sur le balcon ; en el balcón ; sul balcone")),
    "out": tuple(aligned(x) for x in (
        "in the park ; im Park ; au parc ; en el parque ; al parco",
        "in the library ; in der Bibliothek ; à la bibliothèque ; en la biblioteca ; in biblioteca",
        "on the train ; im Zug ; dans le train ; en el tren ; in treno",
        "in the café ; im Café ; au café ; en la cafetería ; al bar",
        "at the office ; im Büro ; au bureau ; en la oficina ; in ufficio")),
    "water": tuple(aligned(x) for x in (
        "in the lake ; im See ; dans le lac ; en el lago ; nel lago",
        "in the sea ; im Meer ; dans la mer ; en el mar ; in mare",
        "at the swimming pool ; im Schwimmbad ; à la piscine ; en la piscina ; in piscina")),
    "sport": tuple(aligned(x) for x in (
        "in the park ; im Park ; au parc ; en el parque ; al parco",
        "at school ; in der Schule ; à l'école ; en la escuela ; a scuola",
        "on the beach ; am Strand ; sur la plage ; en la playa ; in spiaggia",
        "in the garden ; im Garten ; dans le jardin ; en el jardín ; in giardino")),
    "kitchen": (aligned("in the kitchen ; in der Küche ; dans la cuisine ; en la cocina ; in cucina"),),
    "garden": (aligned("in the garden ; im Garten ; dans le jardin ; en el jardín ; in giardino"),),
}

# Motion verbs towards a city: en (present, past, future base) incl. preposition;
# de (finite, separable particle, aux, participle, infinitive, preposition).
MOTION = (
    dict(en=("goes to", "went to", "go to"), de=("fährt", "", "ist", "gefahren", "fahren", "nach"),
         fr=("va", "est allé[|e]", "ira"), es=("va", "fue", "irá"), it=("va", "è andat[o|a]", "andrà"),
         tenses=("pres", "past", "fut"), modes=True),
    dict(en=("returns to", "returned to", "return to"),
         de=("kehrt", "zurück", "ist", "zurückgekehrt", "zurückkehren", "nach"),
         fr=("retourne", "est retourné[|e]", "retournera"), es=("vuelve", "volvió", "volverá"),
         it=("torna", "è tornat[o|a]", "tornerà"), tenses=("past", "fut"), modes=True),
    dict(en=("moves to", "moved to", "move to"), de=("zieht", "", "ist", "gezogen", "ziehen", "nach"),
         fr=("déménage", "a déménagé", "déménagera"), es=("se muda", "se mudó", "se mudará"),
         it=("si trasferisce", "si è trasferit[o|a]", "si trasferirà"), tenses=("past", "fut"), modes=False),
    dict(en=("arrives in", "arrived in", "arrive in"), de=("kommt", "an", "ist", "angekommen", "ankommen", "in"),
         fr=("arrive", "est arrivé[|e]", "arrivera"), es=("llega", "llegó", "llegará"),
         it=("arriva", "è arrivat[o|a]", "arriverà"), tenses=("past", "fut"), modes=True),
)

TRAVEL_MODES = tuple(aligned(x) for x in (
    "by train ; mit dem Zug ; en train ; en tren ; in treno",
    "by car ; mit dem Auto ; en voiture ; en coche ; in macchina",
    "by bus ; mit dem Bus ; en bus ; en autobús ; in autobus",
    "by plane ; mit dem Flugzeug ; en avion ; en avión ; in aereo",
    "by bike ; mit dem Fahrrad ; à vélo ; en bicicleta ; in bicicletta",
))

# Weather: en (present, past, future); de ((finite, rest) x 3); fr/es/it (x 3).
WEATHER = (
    (("it is cold", "it was cold", "it will be cold"), (("ist es", "kalt"), ("war es", "kalt"), ("wird es", "kalt sein")),
     ("il fait froid", "il faisait froid", "il fera froid"), ("hace frío", "hizo frío", "hará frío"),
     ("fa freddo", "ha fatto freddo", "farà freddo")),
    (("it is warm", "it was warm", "it will be warm"), (("ist es", "warm"), ("war es", "warm"), ("wird es", "warm sein")),
     ("il fait chaud", "il faisait chaud", "il fera chaud"), ("hace calor", "hizo calor", "hará calor"),
     ("fa caldo", "ha fatto caldo", "farà caldo")),
    (("it is raining", "it rained", "it will rain"), (("regnet es", ""), ("hat es", "geregnet"), ("wird es", "regnen")),
     ("il pleut", "il a plu", "il pleuvra"), ("llueve", "llovió", "lloverá"), ("piove", "è piovuto", "pioverà")),
    (("it is snowing", "it snowed", "it will snow"), (("schneit es", ""), ("hat es", "geschneit"), ("wird es", "schneien")),
     ("il neige", "il a neigé", "il neigera"), ("nieva", "nevó", "nevará"), ("nevica", "ha nevicato", "nevicherà")),
    (("it is windy", "it was windy", "it will be windy"),
     (("ist es", "windig"), ("war es", "windig"), ("wird es", "windig sein")),
     ("il y a du vent", "il y avait du vent", "il y aura du vent"), ("hace viento", "hizo viento", "hará viento"),
     ("c'è vento", "c'era vento", "ci sarà vento")),
    (("it is sunny", "it was sunny", "it will be sunny"),
     (("ist es", "sonnig"), ("war es", "sonnig"), ("wird es", "sonnig sein")),
     ("il y a du soleil", "il y avait du soleil", "il y aura du soleil"), ("hace sol", "hizo sol", "hará sol"),
     ("c'è il sole", "c'era il sole", "ci sarà il sole")),
    (("it is foggy", "it was foggy", "it will be foggy"),
     (("ist es", "neblig"), ("war es", "neblig"), ("wird es", "neblig sein")),
     ("il y a du brouillard", "il y avait du brouillard", "il y aura du brouillard"),
     ("hay niebla", "hubo niebla", "habrá niebla"), ("c'è nebbia", "c'era nebbia", "ci sarà nebbia")),
)

_FIXED_TIMES = {
    "pres": tuple(aligned(x) for x in (
        "every day ; jeden Tag ; tous les jours ; todos los días ; ogni giorno",
        "every morning ; jeden Morgen ; tous les matins ; todas las mañanas ; ogni mattina",
        "every evening ; jeden Abend ; tous les soirs ; todas las tardes ; ogni sera",
        "every weekend ; jedes Wochenende ; tous les week-ends ; todos los fines de semana ; ogni fine settimana",
        "in the morning ; morgens ; le matin ; por la mañana ; la mattina",
        "in the evening ; abends ; le soir ; por la tarde ; la sera",
        "after work ; nach der Arbeit ; après le travail ; después del trabajo ; dopo il lavoro",
        "after school ; nach der Schule ; après l'école ; después de clase ; dopo la scuola")),
    "prog": tuple(aligned(x) for x in (
        "right now ; gerade ; en ce moment ; ahora mismo ; in questo momento",
        "at the moment ; im Moment ; maintenant ; ahora ; adesso")),
    "past": tuple(aligned(x) for x in (
        "yesterday ; gestern ; hier ; ayer ; ieri",
        "yesterday morning ; gestern Morgen ; hier matin ; ayer por la mañana ; ieri mattina",
        "yesterday evening ; gestern Abend ; hier soir ; ayer por la tarde ; ieri sera",
        "last week ; letzte Woche ; la semaine dernière ; la semana pasada ; la settimana scorsa",
        "last month ; letzten Monat ; le mois dernier ; el mes pasado ; il mese scorso",
        "last year ; letztes Jahr ; l'année dernière ; el año pasado ; l'anno scorso",
        "last summer ; letzten Sommer ; l'été dernier ; el verano pasado ; l'estate scorsa",
        "last winter ; letzten Winter ; l'hiver dernier ; el invierno pasado ; l'inverno scorso",
        "this morning ; heute Morgen ; ce matin ; esta mañana ; stamattina")),
    "fut": tuple(aligned(x) for x in (
        "tomorrow ; morgen ; demain ; mañana ; domani",
        "tomorrow morning ; morgen früh ; demain matin ; mañana por la mañana ; domani mattina",
        "tomorrow evening ; morgen Abend ; demain soir ; mañana por la tarde ; domani sera",
        "the day after tomorrow ; übermorgen ; après-demain ; pasado mañana ; dopodomani",
        "next week ; nächste Woche ; la semaine prochaine ; la semana que viene ; la settimana prossima",
        "next month ; nächsten Monat ; le mois prochain ; el mes que viene ; il mese prossimo",
        "next year ; nächstes Jahr ; l'année prochaine ; el año que viene ; l'anno prossimo",
        "next summer ; nächsten Sommer ; l'été prochain ; el próximo verano ; la prossima estate",
        "this weekend ; dieses Wochenende ; ce week-end ; este fin de semana ; questo fine settimana")),
}

# (en unit, de dative plural, fr, es, it) for "N days ago" / "in N days".
_UNITS = (("days", "Tagen", "jours", "días", "giorni"), ("weeks", "Wochen", "semaines", "semanas", "settimane"),
          ("months", "Monaten", "mois", "meses", "mesi"), ("years", "Jahren", "ans", "años", "anni"))


def it_a(word: str) -> str:
    """Italian ``a`` before a bare noun or name, ``ad`` before another a- (``ad Atene``)."""
    return f"ad {word}" if word[:1] in "aAàÀ" else f"a {word}"


def numbers(n: int) -> dict:
    """``n`` spelled out in every language of the aligned grammar."""
    return {lang: number_words(n, lang) for lang in MULTI_LANGS}


def time_adverbial(rng: random.Random, tense: str) -> dict:
    """An aligned time adverbial compatible with ``tense`` (``pres``/``prog``/``past``/``fut``)."""
    from .lexicon_multi import MONTHS, WEEKDAYS  # local: keeps the import graph flat

    roll = rng.random()
    if tense == "pres" and roll < 0.35:
        day = pick(rng, WEEKDAYS)
        it_art = "la" if day["it"].g == "f" else "il"
        return {"en": f"on {day['en'].pl}s", "de": day["de"].pl, "fr": f"le {day['fr'].sg}",
                "es": f"los {day['es'].pl}", "it": f"{it_art} {day['it'].sg}"}
    if tense == "pres" and roll < 0.45:
        n = rng.randint(2, 4)
        w = numbers(n)
        return {"en": f"{'twice' if n == 2 else w['en'] + ' times'} a week", "de": f"{w['de']}mal pro Woche",
                "fr": f"{w['fr']} fois par semaine", "es": f"{w['es']} veces por semana",
                "it": f"{w['it']} volte alla settimana"}
    if tense in ("past", "fut") and roll < 0.25:
        day = pick(rng, WEEKDAYS)
        return {"en": f"on {day['en'].sg}", "de": f"am {day['de'].sg}", "fr": day["fr"].sg,
                "es": f"el {day['es'].sg}", "it": day["it"].sg}
    if tense in ("past", "fut") and roll < 0.45:
        n = rng.randint(2, 10)
        unit = pick(rng, _UNITS if tense == "past" else _UNITS[:2])
        w = numbers(n)
        if tense == "past":
            return {"en": f"{w['en']} {unit[0]} ago", "de": f"vor {w['de']} {unit[1]}",
                    "fr": f"il y a {w['fr']} {unit[2]}", "es": f"hace {w['es']} {unit[3]}",
                    "it": f"{w['it']} {unit[4]} fa"}
        return {"en": f"in {w['en']} {unit[0]}", "de": f"in {w['de']} {unit[1]}", "fr": f"dans {w['fr']} {unit[2]}",
                "es": f"dentro de {w['es']} {unit[3]}", "it": f"tra {w['it']} {unit[4]}"}
    if tense in ("past", "fut") and roll < 0.55:
        month = pick(rng, MONTHS)
        return {"en": f"in {month['en'].sg}", "de": f"im {month['de'].sg}", "fr": f"en {month['fr'].sg}",
                "es": f"en {month['es'].sg}", "it": it_a(month["it"].sg)}
    return dict(pick(rng, _FIXED_TIMES[tense]))


def clock_time(rng: random.Random) -> dict:
    """An aligned clock time: ``at seven o'clock`` / ``um sieben Uhr`` / ``à sept heures`` ..."""
    hour = rng.randint(2, 11)
    kind = rng.random()
    w = numbers(hour)
    if kind < 0.5:
        return {"en": f"at {w['en']} o'clock", "de": f"um {w['de']} Uhr", "fr": f"à {w['fr']} heures",
                "es": f"a las {w['es']}", "it": f"alle {w['it']}"}
    if kind < 0.8:  # German "halb acht" names the *next* hour
        nxt = number_words(hour + 1, "de")
        return {"en": f"at half past {w['en']}", "de": f"um halb {nxt}", "fr": f"à {w['fr']} heures et demie",
                "es": f"a las {w['es']} y media", "it": f"alle {w['it']} e mezza"}
    return {"en": f"at a quarter past {w['en']}", "de": f"um Viertel nach {w['de']}",
            "fr": f"à {w['fr']} heures et quart", "es": f"a las {w['es']} y cuarto",
            "it": f"alle {w['it']} e un quarto"}


__all__ = ["ACTIVITIES", "Activity", "LOCATIONS", "MOTION", "ObjSpec", "TRAVEL_MODES", "WEATHER", "aligned",
           "clock_time", "it_a", "numbers", "realise_activity", "time_adverbial"]
