"""Tests of data.synth.text: determinism, variety, speakability and hand-checked agreement.

The agreement tests build phrases and sentences through the grammar's lower-level
functions with fixed lexicon entries, so a regression in article, case, elision or
participle logic shows up as an exact string mismatch in the language concerned.
"""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # repo root, for `import data`

from data.synth.text import ASR_LANGS, ST_TARGET_LANGS, asr_sentence, sqa_example, st_example  # noqa: E402
from data.synth.text import lexicon_multi as lm  # noqa: E402
from data.synth.text.grammar import finish_sentence, resolve_gender  # noqa: E402
from data.synth.text.morph import en_indefinite, es_and, fr_join, it_contract, it_definite, noun_phrase  # noqa: E402
from data.synth.text.numbers import en_ordinal, en_year, number_words, ru_plural_class  # noqa: E402
from data.synth.text.russian import count_phrase, ru_past, ru_with  # noqa: E402
from data.synth.text.translation import finish_aligned  # noqa: E402
from data.synth.text.verbs_multi import ACTIVITIES, realise_activity  # noqa: E402

N_DRAWS = 20_000
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
MIN_DISTINCT = {"en": 15_000}  # every other language: 5,000
MIN_VOCAB = {"en": 800}  # every other language: 300


def _entry(group, en: str, sex: str = ""):
    """Lexicon entry of ``group`` whose English singular is ``en`` (and natural sex, if given)."""
    return next(e for e in group if e["en"].sg == en and (not sex or e.sex == sex))


def _activity(en3: str):
    return next(a for a in ACTIVITIES if a.en[0] == en3)


@pytest.fixture(scope="module")
def corpus():
    """20k sentences per ASR language from Random(0), generated once for the module."""
    out = {}
    for lang in ASR_LANGS:
        rng = random.Random(0)
        out[lang] = [asr_sentence(lang, rng) for _ in range(N_DRAWS)]
    return out


# ----------------------------------------------------------------------------- public API


@pytest.mark.parametrize("lang", ASR_LANGS)
def test_asr_sentence_deterministic(lang):
    r1, r2, r3 = random.Random(7), random.Random(7), random.Random(8)
    first = [asr_sentence(lang, r1) for _ in range(200)]
    assert first == [asr_sentence(lang, r2) for _ in range(200)]
    assert first != [asr_sentence(lang, r3) for _ in range(200)]


def test_st_and_sqa_deterministic():
    r1, r2, r3 = random.Random(5), random.Random(5), random.Random(6)
    st = [st_example(r1) for _ in range(200)]
    assert st == [st_example(r2) for _ in range(200)]
    assert st != [st_example(r3) for _ in range(200)]
    q1, q2, q3 = random.Random(5), random.Random(5), random.Random(6)
    qa = [sqa_example(q1) for _ in range(200)]
    assert qa == [sqa_example(q2) for _ in range(200)]
    assert qa != [sqa_example(q3) for _ in range(200)]


def test_languages_declared():
    assert set(ASR_LANGS) >= {"en", "de", "ru", "fr", "es", "it"}
    assert ST_TARGET_LANGS == ("de", "fr", "es", "it")


def test_unknown_language_raises_with_supported_list():
    with pytest.raises(ValueError) as info:
        asr_sentence("xx", random.Random(0))
    for lang in ASR_LANGS:
        assert lang in str(info.value)


@pytest.mark.parametrize("lang", ASR_LANGS)
def test_variety_and_vocabulary(corpus, lang):
    sentences = corpus[lang]
    distinct = len(set(sentences))
    vocab = {w for s in sentences for w in WORD.findall(s.lower())}
    assert distinct >= MIN_DISTINCT.get(lang, 5_000), (lang, distinct)
    assert len(vocab) >= MIN_VOCAB.get(lang, 300), (lang, len(vocab))


@pytest.mark.parametrize("lang", ASR_LANGS)
def test_sentences_are_speakable(corpus, lang):
    for s in corpus[lang]:
        assert not re.search(r"\d", s), s
        assert not re.search(r"[\[\]{}|;:/\\_#@*\"]", s), s  # no template debris or odd symbols
        assert s == s.strip() and "  " not in s and " ," not in s and " ." not in s, s
        assert s[-1] in ".?!", s
        first = s.lstrip("¿¡")
        assert first[:1].isupper(), s
        if lang == "es" and s.endswith("?"):
            assert "¿" in s, s
    if lang == "ru":
        assert all(re.search("[а-яё]", s.lower()) for s in corpus[lang])


def test_st_example_keys_and_entities():
    rng = random.Random(0)
    cities = [(c, re.compile(rf"\b{re.escape(c['en'].sg)}\b")) for c in lm.CITIES]
    names = [re.compile(rf"\b{n}(?:s\b|'|\b)") for n, _ in lm.NAMES]  # German genitive: Lisas, Thomas'
    for _ in range(2_000):
        ex = st_example(rng)
        assert list(ex) == ["en", *ST_TARGET_LANGS]
        for lang, text in ex.items():
            assert text and text[-1] in ".?!" and not re.search(r"\d|[\[\]{}]", text), (lang, text)
        # Named entities survive translation: names verbatim, cities in each language's spelling.
        for pattern in names:
            if pattern.search(ex["en"]):
                assert all(pattern.search(t) for t in ex.values()), ex
        for city, pattern in cities:
            if pattern.search(ex["en"]):
                assert all(city[k].sg in ex[k] for k in ST_TARGET_LANGS), ex
        same_end = {t[-1] for t in ex.values()}
        assert len(same_end) == 1, ex  # a question stays a question


def test_sqa_spans():
    rng = random.Random(0)
    for _ in range(2_000):
        item = sqa_example(rng)
        context = item["context"]
        n_words = len(context.split())
        n_sent = len(re.findall(r"[.?!](?:\s|$)", context))
        assert 40 <= n_words <= 90, context
        assert 3 <= n_sent <= 6, context
        assert not re.search(r"\d", context)
        assert 2 <= len(item["qas"]) <= 4
        assert len({qa["question"] for qa in item["qas"]}) == len(item["qas"])
        for qa in item["qas"]:
            answer, start = qa["answer"], qa["answer_start"]
            assert answer and qa["question"].endswith("?")
            assert context[start:start + len(answer)] == answer, (context, qa)


# ----------------------------------------------------------------------------- hand-checked morphology


def test_german_cases_and_declension():
    dog = _entry(lm.COUNTABLES, "dog")
    umbrella, bike, bag = (_entry(lm.OBJECTS, x) for x in ("umbrella", "bicycle", "bag"))
    red = _entry(lm.THING_ADJS, "red")
    expensive = _entry(lm.THING_ADJS, "expensive")
    assert noun_phrase(dog, "de", case="acc") == "den Hund"
    assert noun_phrase(dog, "de", case="dat") == "dem Hund"
    assert noun_phrase(umbrella, "de", det="indef", case="acc", adj=red) == "einen roten Regenschirm"
    assert noun_phrase(bike, "de", det="indef", adj=red) == "ein rotes Fahrrad"
    assert noun_phrase(bag, "de", det="def", case="dat", adj=expensive) == "der teuren Tasche"
    assert noun_phrase(bag, "de", det="poss", owner="3m", case="acc") == "seine Tasche"
    neighbour = _entry(lm.PERSONS, "neighbour", "m")
    assert noun_phrase(neighbour, "de", det="poss", owner="1s", case="acc") == "meinen Nachbarn"
    station, school, museum = (_entry(lm.PLACES, x) for x in ("station", "school", "museum"))
    assert noun_phrase(station, "de", case="dat", prep="zu") == "zum Bahnhof"
    assert noun_phrase(school, "de", case="dat", prep="zu") == "zur Schule"
    assert noun_phrase(museum, "de", case="acc", prep="in") == "ins Museum"
    assert noun_phrase(museum, "de", case="dat", prep="in") == "im Museum"


def test_french_elision_and_contraction():
    hotel, museum, station = (_entry(lm.PLACES, x) for x in ("hotel", "museum", "station"))
    assert noun_phrase(hotel, "fr") == "l'hôtel"
    assert noun_phrase(hotel, "fr", prep="à") == "à l'hôtel"
    assert noun_phrase(museum, "fr", prep="à") == "au musée"
    assert noun_phrase(station, "fr", prep="de") == "de la gare"
    assert noun_phrase(museum, "fr", prep="de", number="pl") == "des musées"
    bread, water, ham = (_entry(lm.MASS_FOOD, x) for x in ("bread", "water", "ham"))
    assert [noun_phrase(x, "fr", det="part") for x in (bread, water, ham)] == ["du pain", "de l'eau", "du jambon"]
    assert noun_phrase(ham, "fr") == "le jambon"  # h aspiré: no elision
    friend_f = _entry(lm.PERSONS, "friend", "f")
    assert noun_phrase(friend_f, "fr", det="poss", owner="1s") == "mon amie"
    assert noun_phrase(_entry(lm.OBJECTS, "scarf"), "fr", det="poss", owner="3f") == "son écharpe"
    assert fr_join("que", "Anna") == "qu'Anna" and fr_join("de", "Hugo") == "d'Hugo"
    assert noun_phrase(_entry(lm.OBJECTS, "bag"), "fr", det="indef", adj=_entry(lm.THING_ADJS, "white")) == \
        "un sac blanc"


def test_spanish_articles_and_agreement():
    museum, station = (_entry(lm.PLACES, x) for x in ("museum", "station"))
    assert noun_phrase(museum, "es", prep="a") == "al museo"
    assert noun_phrase(museum, "es", prep="de") == "del museo"
    assert noun_phrase(station, "es", prep="en") == "en la estación"
    backpack = _entry(lm.OBJECTS, "backpack")
    black = _entry(lm.THING_ADJS, "black")
    assert noun_phrase(backpack, "es", det="indef", adj=black) == "una mochila negra"
    assert noun_phrase(backpack, "es", number="pl") == "las mochilas"
    assert es_and("inglés", "italiano") == "inglés e italiano"
    assert es_and("pan", "queso") == "pan y queso"


def test_italian_articles_and_contractions():
    backpack, umbrella, bag = (_entry(lm.OBJECTS, x) for x in ("backpack", "umbrella", "bag"))
    assert noun_phrase(backpack, "it") == "lo zaino"
    assert noun_phrase(backpack, "it", number="pl") == "gli zaini"
    assert noun_phrase(backpack, "it", det="indef") == "uno zaino"
    assert noun_phrase(umbrella, "it") == "l'ombrello"
    assert noun_phrase(bag, "it", det="poss", owner="3m") == "la sua borsa"
    shelf, drawer = (_entry(lm.FURNITURE, x) for x in ("shelf", "drawer"))
    assert noun_phrase(shelf, "it", prep="su") == "sullo scaffale"
    assert noun_phrase(drawer, "it", prep="in") == "nel cassetto"
    water = _entry(lm.MASS_FOOD, "water")
    assert noun_phrase(water, "it", det="part") == "dell'acqua"
    salad = _entry(lm.COUNT_FOOD, "salad")
    assert noun_phrase(salad, "it", det="indef") == "un'insalata"
    sister, friend = _entry(lm.PERSONS, "sister"), _entry(lm.PERSONS, "friend", "m")
    assert noun_phrase(sister, "it", det="poss", owner="1s") == "mia sorella"  # kin: no article
    assert noun_phrase(friend, "it", det="poss", owner="1s", prep="a") == "al mio amico"
    assert it_definite("m", False, "studente") == "lo" and it_contract("di", "gli") == "degli"


def test_english_articles():
    assert en_indefinite("umbrella") == "an" and en_indefinite("university") == "a"
    assert en_indefinite("hour") == "an" and en_indefinite("red") == "a"
    red = _entry(lm.THING_ADJS, "red")
    assert noun_phrase(_entry(lm.OBJECTS, "umbrella"), "en", det="indef", adj=red) == "a red umbrella"


def test_aligned_sentence_feed_the_dog():
    """A full aligned sentence from an activity + fixed entries, checked in all five languages."""
    dog = _entry(lm.COUNTABLES, "dog")
    obj = {k: noun_phrase(dog, k, case="acc", prep={"fr": "à", "es": "a", "it": "a"}.get(k))
           for k in ("en", "de", "fr", "es", "it")}
    pred = realise_activity(_activity("feeds"), "past", obj, "m")
    fin, rest = pred["de"]
    raw = {"en": f"Peter {pred['en']} yesterday.", "de": f"Peter {fin} gestern {rest}.",
           "fr": f"Peter {pred['fr']} hier.", "es": f"Peter {pred['es']} ayer.", "it": f"Peter {pred['it']} ieri."}
    assert finish_aligned(raw) == {
        "en": "Peter fed the dog yesterday.",
        "de": "Peter hat gestern den Hund gefüttert.",
        "fr": "Peter a donné à manger au chien hier.",
        "es": "Peter dio de comer al perro ayer.",
        "it": "Peter ha dato da mangiare al cane ieri.",
    }


def test_aligned_sentence_participle_agreement():
    """Anna visited her mother: Italian 'è andata', German 'ihre', Spanish personal 'a'."""
    mother = _entry(lm.PERSONS, "mother")
    obj = {k: noun_phrase(mother, k, det="poss", owner="3f", case="acc", prep={"fr": "à", "es": "a"}.get(k))
           for k in ("en", "de", "fr", "es", "it")}
    act = _activity("visits")
    past, fut = realise_activity(act, "past", obj, "f"), realise_activity(act, "fut", obj, "f")
    assert past["en"] == "visited her mother" and past["de"] == ("hat", "ihre Mutter besucht")
    assert past["fr"] == "a rendu visite à sa mère" and past["es"] == "visitó a su madre"
    assert past["it"] == "è andata a trovare sua madre"
    assert realise_activity(act, "past", obj, "m")["it"] == "è andato a trovare sua madre"
    assert fut["de"] == ("wird", "ihre Mutter besuchen") and fut["it"] == "andrà a trovare sua madre"
    prog = realise_activity(_activity("writes"), "prog", {"fr": "une lettre"}, "f")
    assert prog["fr"] == "est en train d'écrire une lettre"
    assert resolve_gender("est allé[|e]", "f") == "est allée" and resolve_gender("stanc[o|a]", "m") == "stanco"


def test_finish_sentence_and_spanish_marks():
    assert finish_sentence("  anna  lives in rome ") == "Anna lives in rome."
    out = finish_aligned({"en": "where is it?", "de": "wo ist es?", "fr": "où est-ce?", "es": "dónde está?",
                          "it": "dov'è?"})
    assert out["es"] == "¿Dónde está?" and out["it"] == "Dov'è?"


# ----------------------------------------------------------------------------- numbers and Russian


def test_number_words():
    assert number_words(115, "en") == "one hundred and fifteen"
    assert number_words(2024, "en") == "two thousand and twenty-four"
    assert en_year(1987) == "nineteen eighty-seven" and en_year(1905) == "nineteen oh five"
    assert en_ordinal(23) == "twenty-third" and en_ordinal(12) == "twelfth"
    assert number_words(21, "de") == "einundzwanzig" and number_words(347, "de") == "dreihundertsiebenundvierzig"
    assert number_words(71, "fr") == "soixante et onze" and number_words(80, "fr") == "quatre-vingts"
    assert number_words(92, "fr") == "quatre-vingt-douze" and number_words(200, "fr") == "deux cents"
    assert number_words(31, "es") == "treinta y uno" and number_words(100, "es") == "cien"
    assert number_words(26, "es") == "veintiséis" and number_words(500, "es") == "quinientos"
    assert number_words(28, "it") == "ventotto" and number_words(23, "it") == "ventitré"
    assert number_words(180, "it") == "centottanta"
    assert number_words(2, "ru", "f") == "две" and number_words(41, "ru", "f") == "сорок одна"
    with pytest.raises(ValueError):
        number_words(5, "xx")


def test_russian_agreement():
    years = ("год", "года", "лет")
    assert [count_phrase(n, years, "m") for n in (1, 3, 5, 11, 21, 24)] == [
        "один год", "три года", "пять лет", "одиннадцать лет", "двадцать один год", "двадцать четыре года"]
    assert count_phrase(2, ("кошка", "кошки", "кошек"), "f") == "две кошки"
    assert [ru_plural_class(n) for n in (1, 2, 5, 12, 22, 111)] == ["one", "few", "many", "many", "few", "many"]
    assert ru_past("прочитал", "f") == "прочитала" and ru_past("прочитал", "m") == "прочитал"
    assert ru_past("занимался спортом", "f") == "занималась спортом"
    assert ru_past("пришёл/пришла", "f") == "пришла"
    assert ru_with("Светланой") == "со Светланой" and ru_with("мамой") == "с мамой"
