"""Russian sentence grammar: standalone templates over an explicitly inflected lexicon.

Agreement handled here: past-tense verbs and short adjectives agree with the
subject's sex (``пошёл``/``пошла``, ``устал``/``устала``), possessives with the
noun's gender and case (``моему брату``, ``мою сестру``), and nouns after
numerals take nominative singular / genitive singular / genitive plural by the
last digits (``двадцать один год``, ``три года``, ``пять лет``), with ``один``/
``одна`` and ``два``/``две`` matching the noun's gender.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon_ru as lx
from .grammar import finish_sentence, pick
from .numbers import number_words, ru_plural_class


@dataclass(frozen=True)
class RuPerson:
    """A person as subject/object: forms in nom, gen, dat, acc, ins plus natural sex."""

    forms: tuple
    sex: str

    def case(self, name: str) -> str:
        """The form in case ``nom``/``gen``/``dat``/``acc``/``ins``."""
        return self.forms[("nom", "gen", "dat", "acc", "ins").index(name)]


def ru_past(form: str, sex: str) -> str:
    """Past tense agreeing with ``sex``: ``m/f`` written out, else derived from the masculine."""
    if "/" in form:
        masc, fem = form.split("/")
        return fem if sex == "f" else masc
    if sex != "f":
        return form
    first, _, rest = form.partition(" ")
    if first.endswith("лся"):
        first = first[:-3] + "лась"
    elif first.endswith("л"):
        first += "а"
    return f"{first} {rest}".strip()


def ru_with(instrumental: str) -> str:
    """``с`` + instrumental, ``со`` before a sibilant + consonant cluster (``со Светланой``)."""
    low = instrumental.lower()
    clash = low[:1] in "сзшжщ" and low[1:2] not in "аеёиоуыэюяь"
    return f"{'со' if clash else 'с'} {instrumental}"


def count_phrase(n: int, forms: tuple, gender: str) -> str:
    """``n`` + noun in the form the numeral requires (``две кошки``, ``пять кошек``)."""
    noun = forms[("one", "few", "many").index(ru_plural_class(n))]
    return f"{number_words(n, 'ru', gender)} {noun}"


def _count(rng: random.Random, lo: int, hi: int) -> int:
    return rng.randint(lo, hi)


def person(rng: random.Random, names_only: bool = False) -> RuPerson:
    """A name, or a relative/acquaintance with ``мой``/``наш``."""
    if names_only or rng.random() < 0.6:
        forms, (g,) = pick(rng, lx.NAMES)
        return RuPerson(forms, g)
    forms, (g,), (sex,) = pick(rng, lx.KIN)
    poss = lx.POSSESSIVES["наш" if forms[0] in ("сосед", "соседка", "коллега") and rng.random() < 0.5 else "мой"]
    return RuPerson(tuple(f"{p} {n}" for p, n in zip(poss[g], forms)), sex)


def bare_kin(rng: random.Random) -> RuPerson:
    """A relative without possessive (``позвонила маме``), or a name."""
    if rng.random() < 0.5:
        forms, (g,) = pick(rng, lx.NAMES)
        return RuPerson(forms, g)
    forms, _, (sex,) = pick(rng, lx.KIN)
    return RuPerson(forms, sex)


def time_phrase(rng: random.Random, tense: str) -> str:
    """A time adverbial compatible with ``tense`` (``hab``/``now``/``past``/``fut``)."""
    roll = rng.random()
    if tense == "hab" and roll < 0.25:
        return pick(rng, lx.WEEKDAYS)[1][0]
    if tense in ("past", "fut") and roll < 0.2:
        return pick(rng, lx.WEEKDAYS)[0][0]
    if tense in ("past", "fut") and roll < 0.4:
        forms, (g,) = pick(rng, lx.UNITS[:4])
        n = _count(rng, 2, 12)
        return f"{count_phrase(n, forms, g)} назад" if tense == "past" else f"через {count_phrase(n, forms, g)}"
    if tense in ("past", "fut") and roll < 0.5:
        return pick(rng, lx.MONTHS_PREP)
    return pick(rng, lx.TIMES[tense])


def _clock(rng: random.Random) -> str:
    hour = rng.randint(1, 12)
    if rng.random() < 0.3 and hour > 1:
        return f"в {number_words(hour, 'ru')} {pick(rng, ('пятнадцать', 'тридцать', 'сорок пять', 'двадцать'))}"
    if hour == 1:
        return "в час"
    return f"в {count_phrase(hour, lx.UNITS[4][0], 'm')}"


def _front(rng: random.Random, subj: str, time: str, rest: str) -> str:
    # Russian word order is free; both "Вчера Анна ..." and "Анна вчера ..." are neutral.
    return f"{time} {subj} {rest}" if rng.random() < 0.4 else f"{subj} {time} {rest}"


def r_activity(rng: random.Random) -> str:
    """Анна вчера прочитала книгу на балконе."""
    pres, past, fut, _, _, objs, groups = pick(rng, lx.ACTIVITIES)
    tense = pick(rng, ("hab", "now", "past", "fut"))
    s = person(rng)
    verb = {"hab": pres[0], "now": pres[0], "past": ru_past(past[0] if len(past) == 1 else "/".join(past), s.sex),
            "fut": fut[0]}[tense]
    obj = pick(rng, objs) if objs != ("-",) else ""
    places = tuple(p for g in groups for p in lx.ACTIVITY_PLACES[g])
    loc = pick(rng, places) if places and rng.random() < 0.4 else ""
    return _front(rng, s.case("nom"), time_phrase(rng, tense), f"{verb} {obj} {loc}") + "."


def r_person_verb(rng: random.Random) -> str:
    """Мой сосед на прошлой неделе позвонил маме."""
    pres, past, fut, _, (case,) = pick(rng, lx.PERSON_VERBS)
    tense = pick(rng, ("hab", "past", "fut"))
    s, o = person(rng), bare_kin(rng)
    verb = {"hab": pres[0], "past": ru_past("/".join(past), s.sex), "fut": fut[0]}[tense]
    return _front(rng, s.case("nom"), time_phrase(rng, tense), f"{verb} {o.case(case)}") + "."


_TRANSPORT = ("на поезде", "на машине", "на автобусе", "")
_MOTION = {  # tense -> (ground verb, flying verb)
    "hab": ("ездит", "летает"), "now": ("едет", "летит"), "past": ("ездил", "летал"), "fut": ("поедет", "полетит"),
}


def r_motion(rng: random.Random) -> str:
    """Ольга завтра поедет на поезде в Казань."""
    s, (_, (to,), _, (frm,)) = person(rng), pick(rng, lx.CITIES)
    roll = rng.random()
    if roll < 0.2:
        verb = pick(rng, ("вернулся", "переехал"))
        if verb == "вернулся":
            return _front(rng, s.case("nom"), time_phrase(rng, "past"), f"{ru_past(verb, s.sex)} {frm}") + "."
        return _front(rng, s.case("nom"), time_phrase(rng, "past"), f"{ru_past(verb, s.sex)} {to}") + "."
    tense = pick(rng, ("hab", "now", "past", "fut"))
    fly = rng.random() < 0.2
    verb = _MOTION[tense][fly]
    if tense == "past":
        verb = ru_past(verb, s.sex)
    how = "" if fly else pick(rng, _TRANSPORT)
    return _front(rng, s.case("nom"), time_phrase(rng, tense), f"{verb} {how} {to}") + "."


def r_go_place(rng: random.Random) -> str:
    """Иван каждый день ходит на работу. / Мария сейчас в магазине."""
    s = person(rng)
    _, _, (to,), (at,), _, _ = pick(rng, lx.PLACES)
    tense = pick(rng, ("hab", "now", "past", "fut", "be_now", "be_past"))
    if tense == "be_now":
        return f"{s.case('nom')} сейчас {at}."
    if tense == "be_past":
        return _front(rng, s.case("nom"), time_phrase(rng, "past"), f"{ru_past('был', s.sex)} {at}") + "."
    verb = {"hab": "ходит", "now": "идёт", "past": ru_past("ходил", s.sex), "fut": "пойдёт"}[tense]
    return _front(rng, s.case("nom"), time_phrase(rng, tense), f"{verb} {to}") + "."


def r_age(rng: random.Random) -> str:
    """Моему брату двадцать три года."""
    s = person(rng)
    if rng.random() < 0.2:
        return f"Сколько лет {s.case('dat')}?"
    return f"{s.case('dat')} {count_phrase(_count(rng, 2, 95), lx.UNITS[3][0], 'm')}."


def r_count(rng: random.Random) -> str:
    """У Анны есть две кошки."""
    s = person(rng)
    forms, (g,) = pick(rng, lx.COUNTABLES)
    n = _count(rng, 1, 5) if rng.random() < 0.7 else _count(rng, 6, 40)
    est = " есть" if rng.random() < 0.4 else ""
    return f"У {s.case('gen')}{est} {count_phrase(n, forms, g)}."


def r_price(rng: random.Random) -> str:
    """Билет стоит триста рублей."""
    (noun,), (g,) = pick(rng, lx.PRICED)
    if rng.random() < 0.2:
        return f"Сколько стоит {noun}?"
    n = _count(rng, 1, 999)
    rub = count_phrase(n, ("рубль", "рубля", "рублей"), "m")
    if rng.random() < 0.3:
        verb = {"m": "стоил", "f": "стоила", "n": "стоило"}[g]
        return f"{noun} {verb} {rub}."
    return f"{noun} стоит {rub}."


_WEATHER = (("холодно", "было холодно", "будет холодно"), ("тепло", "было тепло", "будет тепло"),
            ("жарко", "было жарко", "будет жарко"), ("ветрено", "было ветрено", "будет ветрено"),
            ("идёт дождь", "шёл дождь", "будет дождь"), ("идёт снег", "шёл снег", "будет снег"),
            ("солнечно", "было солнечно", "будет солнечно"), ("туман", "был туман", "будет туман"),
            ("пасмурно", "было пасмурно", "будет пасмурно"))


def r_weather(rng: random.Random) -> str:
    """Вчера в Москве шёл дождь."""
    _, _, (at,), _ = pick(rng, lx.CITIES)
    i = rng.randrange(3)
    time = pick(rng, (("сегодня", "сейчас"), ("вчера", "позавчера", "на прошлой неделе"),
                      ("завтра", "в выходные", "на следующей неделе"))[i])
    return f"{time} {at} {pick(rng, _WEATHER)[i]}."


def r_vehicle(rng: random.Random) -> str:
    """Поезд в Тулу отправляется в семь часов."""
    _, (to,), _, (frm,) = pick(rng, lx.CITIES)
    leave = rng.random() < 0.5
    veh, verbs = pick(rng, (("поезд", ("отправляется", "отправился", "прибывает", "прибыл")),
                            ("автобус", ("отправляется", "отправился", "приходит", "пришёл")),
                            ("самолёт", ("вылетает", "вылетел", "прилетает", "прилетел"))))
    where = to if leave else frm
    verb = verbs[(0 if leave else 2) + (1 if rng.random() < 0.3 else 0)]
    if rng.random() < 0.2:
        return f"Когда {verbs[0 if leave else 2]} {veh} {where}?"
    return f"{veh} {where} {verb} {_clock(rng)}."


def r_opening(rng: random.Random) -> str:
    """Музей открывается в десять часов. / По понедельникам музей не работает."""
    (nom,), (g,), *_ = pick(rng, tuple(p for p in lx.PLACES if p[0][0] not in ("работа", "дача", "пляж")))
    roll = rng.random()
    if roll < 0.3:
        return f"{pick(rng, lx.WEEKDAYS)[1][0]} {nom} не работает."
    verb = pick(rng, ("открывается", "закрывается"))
    if roll < 0.45:
        return f"Во сколько {verb} {nom}?"
    return f"{nom} {verb} {_clock(rng)}."


def r_directions(rng: random.Random) -> str:
    """Как доехать до вокзала?"""
    (nom,), _, _, _, (frm,), _ = pick(rng, lx.PLACES)
    gen = frm.split(" ", 1)[1]
    return pick(rng, (f"Где находится {nom}?", f"Вы не знаете, где здесь {nom}?", f"Как доехать до {gen}?",
                      f"Извините, как пройти до {gen}?"))


def r_state(rng: random.Random) -> str:
    """Анна сегодня очень устала."""
    s = person(rng)
    forms, _ = pick(rng, lx.STATES)
    adj = forms[1] if s.sex == "f" else forms[0]
    deg = pick(rng, ("очень ", "немного ", "", "совсем "))
    if rng.random() < 0.35:
        # "устал" is itself a past verb: "вчера Анна очень устала", never "была устала".
        copula = "" if forms[0] == "устал" else ru_past("был", s.sex) + " "
        return _front(rng, s.case("nom"), time_phrase(rng, "past"), f"{copula}{deg}{adj}") + "."
    return f"{s.case('nom')} {pick(rng, ('сегодня', 'сейчас'))} {deg}{adj}."


def r_absent(rng: random.Random) -> str:
    """Иван не пришёл на работу, потому что он болен."""
    s = person(rng)
    _, _, (to,), *_ = pick(rng, tuple(p for p in lx.PLACES if p[0][0] in ("работа", "школа", "театр", "университет",
                                                                             "кино", "бассейн", "офис")))
    came = ru_past("пришёл/пришла", s.sex)
    if rng.random() < 0.3:
        return f"Почему {s.case('nom')} не {came} {to}?"
    forms, _ = pick(rng, lx.STATES[:3])
    pron = "она" if s.sex == "f" else "он"
    return f"{s.case('nom')} не {came} {to}, потому что {pron} {forms[1] if s.sex == 'f' else forms[0]}."


def r_job(rng: random.Random) -> str:
    """Моя мама работает учительницей в Самаре."""
    s = person(rng)
    job, _ = pick(rng, lx.JOBS_INS)
    j = job[1] if s.sex == "f" else job[0]
    _, _, (at,), _ = pick(rng, lx.CITIES)
    if rng.random() < 0.4:
        n = count_phrase(_count(rng, 2, 30), lx.UNITS[3][0], "m")
        return f"{s.case('nom')} {n} {ru_past('работал', s.sex)} {j} {at}."
    return f"{s.case('nom')} работает {j} {at}."


def r_lives(rng: random.Random) -> str:
    """Когда Ольга была маленькой, она жила в Твери."""
    s = person(rng)
    _, _, (at,), _ = pick(rng, lx.CITIES)
    roll = rng.random()
    if roll < 0.3:
        k = bare_kin(rng)
        return f"{s.case('nom')} живёт {at} {ru_with(k.case('ins'))}."
    if roll < 0.55:
        return f"{s.case('nom')} живёт {at} уже {count_phrase(_count(rng, 1, 40), lx.UNITS[3][0], 'm')}."
    if roll < 0.75:
        return f"{s.case('nom')} {ru_past('родился/родилась', s.sex)} {at}."
    small = "маленькой" if s.sex == "f" else "маленьким"
    pron = "она" if s.sex == "f" else "он"
    return f"Когда {s.case('nom')} {ru_past('был', s.sex)} {small}, {pron} {ru_past('жил', s.sex)} {at}."


def r_speaks(rng: random.Random) -> str:
    """Павел хорошо говорит по-английски и по-немецки."""
    s = person(rng)
    a = pick(rng, lx.LANG_ADVERBS)
    b = pick(rng, tuple(x for x in lx.LANG_ADVERBS if x != a))
    how = pick(rng, ("хорошо ", "немного ", "свободно ", ""))
    return f"{s.case('nom')} {how}говорит {a}" + (f" и {b}." if rng.random() < 0.5 else ".")


def r_gift(rng: random.Random) -> str:
    """Анна подарила маме красный шарф на день рождения."""
    s, k = person(rng), bare_kin(rng)
    verb = ru_past("подарил", s.sex) if rng.random() < 0.6 else "подарит"
    occ = pick(rng, (" на день рождения", " на Новый год", " на свадьбу", "", ""))
    return f"{s.case('nom')} {verb} {k.case('dat')} {pick(rng, lx.GIFTS_ACC)}{occ}."


def r_many(rng: random.Random) -> str:
    """В Москве много театров."""
    _, _, (at,), _ = pick(rng, lx.CITIES)
    _, _, _, _, _, (gen_pl,) = pick(rng, tuple(p for p in lx.PLACES if p[5] != ("-",)))
    return f"{at} {pick(rng, ('много', 'мало', 'очень много'))} {gen_pl}."


_MY = {"m": "мой", "f": "моя", "n": "моё", "-": "мои"}
_MY_ACC = {"m": "мой", "f": "мою", "n": "моё", "-": "мои"}


def r_things(rng: random.Random) -> str:
    """Ключи лежат на столе. / Где моя сумка?"""
    (noun,), (num,), (g,) = pick(rng, lx.THINGS)
    roll = rng.random()
    if roll < 0.2:
        return f"Где {_MY[g]} {noun}?"
    if roll < 0.35:
        acc = noun[:-1] + "у" if g == "f" and noun.endswith("а") else noun
        return f"Ты не видел {_MY_ACC[g]} {acc}?"
    if rng.random() < 0.3:
        verb = {"m": "лежал", "f": "лежала", "n": "лежало", "-": "лежали"}[g]
    else:
        verb = "лежат" if num == "pl" else "лежит"
    return f"{noun} {verb} {pick(rng, lx.SURFACES)}."


def r_need(rng: random.Random) -> str:
    """Мне нужно завтра починить велосипед."""
    _, _, _, _, (inf,), objs, _ = pick(rng, tuple(a for a in lx.ACTIVITIES if a[5] != ("-",)))
    who = pick(rng, ("Мне", "Нам", "Тебе", "Ему", "Ей"))
    when = pick(rng, ("сегодня", "завтра", "до вечера", "на этой неделе", "срочно", "завтра утром"))
    return f"{who} нужно {when} {inf} {pick(rng, objs)}."


def r_modal(rng: random.Random) -> str:
    """Сергей завтра должен приготовить ужин."""
    s = person(rng)
    _, _, _, _, (inf,), objs, _ = pick(rng, lx.ACTIVITIES)
    obj = pick(rng, objs) if objs != ("-",) else ""
    modal = pick(rng, (("должен", "должна"), ("хочет", "хочет"), ("может", "может")))[s.sex == "f"]
    return _front(rng, s.case("nom"), time_phrase(rng, "fut"), f"{modal} {inf} {obj}") + "."


def r_invite(rng: random.Random) -> str:
    """Пойдём в субботу в театр?"""
    if rng.random() < 0.5:
        _, _, (to,), *_ = pick(rng, lx.PLACES)
        return f"Пойдём {time_phrase(rng, 'fut')} {to}?"
    _, _, _, _, (inf,), objs, _ = pick(rng, lx.ACTIVITIES)
    obj = pick(rng, objs) if objs != ("-",) else ""
    return f"Хочешь {time_phrase(rng, 'fut')} {inf} {obj} вместе?"


def r_phrase(rng: random.Random) -> str:
    """Fixed everyday phrases (Спасибо за помощь.)."""
    return pick(rng, lx.PHRASES)


RU_FRAMES = ((18, r_activity), (6, r_person_verb), (7, r_motion), (6, r_go_place), (3, r_age), (3, r_count),
             (3, r_price), (4, r_weather), (3, r_vehicle), (2, r_opening), (2, r_directions), (4, r_state),
             (2, r_absent), (3, r_job), (4, r_lives), (2, r_speaks), (3, r_gift), (1, r_many), (3, r_things),
             (2, r_need), (3, r_modal), (2, r_invite), (1, r_phrase))
_WEIGHTS = tuple(w for w, _ in RU_FRAMES)
_FUNCS = tuple(f for _, f in RU_FRAMES)


def russian_sentence(rng: random.Random) -> str:
    """One grammatical Russian sentence (Cyrillic, numbers in words).

    Args:
        rng: Random source (the only one used).

    Returns:
        The finished sentence.
    """
    frame = rng.choices(_FUNCS, weights=_WEIGHTS, k=1)[0]
    return finish_sentence(frame(rng))
