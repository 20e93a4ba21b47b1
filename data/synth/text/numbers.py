"""Numbers spelled out as words for every corpus language.

espeak-ng reads digit strings inconsistently across voices (and the ASR targets
should match what is spoken), so generated text never contains digits; every
quantity goes through :func:`number_words`.  Coverage is what the templates use:
0..999,999 for English, 0..9,999 for de/fr/es/it and 0..999 for Russian.
"""

from __future__ import annotations

_EN_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_EN_ORD_IRREGULAR = {
    "one": "first", "two": "second", "three": "third", "five": "fifth",
    "eight": "eighth", "nine": "ninth", "twelve": "twelfth",
}

_DE_ONES = (
    "null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn "
    "vierzehn fünfzehn sechzehn siebzehn achtzehn neunzehn"
).split()
_DE_TENS = "_ _ zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()

_FR_ONES = (
    "zéro un deux trois quatre cinq six sept huit neuf dix onze douze treize "
    "quatorze quinze seize dix-sept dix-huit dix-neuf"
).split()
_FR_TENS = "_ _ vingt trente quarante cinquante soixante".split()

_ES_ONES = (
    "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece "
    "catorce quince dieciséis diecisiete dieciocho diecinueve veinte veintiuno "
    "veintidós veintitrés veinticuatro veinticinco veintiséis veintisiete "
    "veintiocho veintinueve"
).split()
_ES_TENS = "_ _ veinte treinta cuarenta cincuenta sesenta setenta ochenta noventa".split()
_ES_HUNDREDS = (
    "_ ciento doscientos trescientos cuatrocientos quinientos seiscientos "
    "setecientos ochocientos novecientos"
).split()

_IT_ONES = (
    "zero uno due tre quattro cinque sei sette otto nove dieci undici dodici "
    "tredici quattordici quindici sedici diciassette diciotto diciannove"
).split()
_IT_TENS = "_ _ venti trenta quaranta cinquanta sessanta settanta ottanta novanta".split()

_RU_ONES = (
    "ноль один два три четыре пять шесть семь восемь девять десять одиннадцать "
    "двенадцать тринадцать четырнадцать пятнадцать шестнадцать семнадцать "
    "восемнадцать девятнадцать"
).split()
_RU_TENS = "_ _ двадцать тридцать сорок пятьдесят шестьдесят семьдесят восемьдесят девяносто".split()
_RU_HUNDREDS = "_ сто двести триста четыреста пятьсот шестьсот семьсот восемьсот девятьсот".split()


def _en(n: int) -> str:
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _EN_TENS[tens] + (f"-{_EN_ONES[unit]}" if unit else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" and {_en(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    joiner = " and " if rest < 100 else " "
    return f"{_en(thousands)} thousand" + (joiner + _en(rest) if rest else "")


def _de(n: int) -> str:
    if n < 20:
        return _DE_ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        # 21 is "einundzwanzig": the unit is the bare "ein", not the counting "eins".
        unit_word = "ein" if unit == 1 else _DE_ONES[unit]
        return (f"{unit_word}und" if unit else "") + _DE_TENS[tens]
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = "hundert" if hundreds == 1 else _DE_ONES[hundreds] + "hundert"
        return head + (_de(rest) if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "tausend" if thousands == 1 else _de(thousands) + "tausend"
    return head + (_de(rest) if rest else "")


def _fr_below_100(n: int) -> str:
    if n < 20:
        return _FR_ONES[n]
    if n < 70:
        tens, unit = divmod(n, 10)
        if unit == 0:
            return _FR_TENS[tens]
        return _FR_TENS[tens] + (" et un" if unit == 1 else f"-{_FR_ONES[unit]}")
    if n < 80:  # soixante-dix .. soixante-dix-neuf
        return "soixante et onze" if n == 71 else f"soixante-{_FR_ONES[n - 60]}"
    if n == 80:
        return "quatre-vingts"
    return f"quatre-vingt-{_FR_ONES[n - 80]}"


def _fr(n: int) -> str:
    if n < 100:
        return _fr_below_100(n)
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        if hundreds == 1:
            head = "cent"
        else:
            # "deux cents" takes the plural -s only when nothing follows.
            head = f"{_FR_ONES[hundreds]} cent" + ("" if rest else "s")
        return head + (f" {_fr_below_100(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "mille" if thousands == 1 else f"{_fr(thousands)} mille"
    return head + (f" {_fr(rest)}" if rest else "")


def _es(n: int) -> str:
    if n < 30:
        return _ES_ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _ES_TENS[tens] + (f" y {_ES_ONES[unit]}" if unit else "")
    if n < 1000:
        if n == 100:
            return "cien"
        hundreds, rest = divmod(n, 100)
        return _ES_HUNDREDS[hundreds] + (f" {_es(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = "mil" if thousands == 1 else f"{_es(thousands)} mil"
    return head + (f" {_es(rest)}" if rest else "")


def _it(n: int) -> str:
    if n < 20:
        return _IT_ONES[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        ten_word = _IT_TENS[tens]
        if unit == 0:
            return ten_word
        if unit in (1, 8):  # vowel clash: ventuno, trentotto
            ten_word = ten_word[:-1]
        return ten_word + ("tré" if unit == 3 else _IT_ONES[unit])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = "cento" if hundreds == 1 else _IT_ONES[hundreds] + "cento"
        tail = _it(rest) if rest else ""
        if tail.startswith("ott"):  # centottanta, duecentotto: the vowels merge
            head = head[:-1]
        return head + tail
    thousands, rest = divmod(n, 1000)
    head = "mille" if thousands == 1 else _it(thousands) + "mila"
    return head + (_it(rest) if rest else "")


def _ru(n: int, gender: str = "m") -> str:
    if n < 20:
        word = _RU_ONES[n]
    elif n < 100:
        tens, unit = divmod(n, 10)
        return _RU_TENS[tens] + (f" {_ru(unit, gender)}" if unit else "")
    else:
        hundreds, rest = divmod(n, 100)
        return _RU_HUNDREDS[hundreds] + (f" {_ru(rest, gender)}" if rest else "")
    # Only "one" and "two" inflect for gender.
    if gender == "f":
        return {"один": "одна", "два": "две"}.get(word, word)
    if gender == "n":
        return {"один": "одно"}.get(word, word)
    return word


_LIMITS = {"en": 999_999, "de": 9_999, "fr": 9_999, "es": 9_999, "it": 9_999, "ru": 999}


def number_words(n: int, lang: str, gender: str = "m") -> str:
    """Spell a non-negative integer as words.

    Args:
        n: The number, within the range supported for ``lang``.
        lang: One of ``en de fr es it ru``.
        gender: Grammatical gender of the counted noun (``m``/``f``/``n``); only
            Russian uses it (``две кошки`` vs ``два брата``).

    Returns:
        The number in words, e.g. ``number_words(71, "fr") == "soixante et onze"``.
    """
    if lang not in _LIMITS:
        raise ValueError(f"no number words for {lang!r}; supported: {', '.join(_LIMITS)}")
    if not 0 <= n <= _LIMITS[lang]:
        raise ValueError(f"{n} out of range for {lang} number words")
    if lang == "ru":
        return _ru(n, gender)
    return {"en": _en, "de": _de, "fr": _fr, "es": _es, "it": _it}[lang](n)


def en_ordinal(n: int) -> str:
    """English ordinal in words (``1 -> first``, ``23 -> twenty-third``)."""
    words = _en(n)
    head, sep, last = words.rpartition("-") if "-" in words else words.rpartition(" ")
    if last in _EN_ORD_IRREGULAR:
        last = _EN_ORD_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def en_year(year: int) -> str:
    """English year as commonly spoken (``1987 -> nineteen eighty-seven``)."""
    if 2000 <= year < 2010:
        return "two thousand" + (f" and {_en(year - 2000)}" if year > 2000 else "")
    century, rest = divmod(year, 100)
    if rest == 0:
        return f"{_en(century)} hundred"
    if rest < 10:
        return f"{_en(century)} oh {_en(rest)}"
    return f"{_en(century)} {_en(rest)}"


def ru_plural_class(n: int) -> str:
    """Russian noun form required after ``n``: ``one`` (nom sg), ``few`` (gen sg), ``many`` (gen pl)."""
    if n % 10 == 1 and n % 100 != 11:
        return "one"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return "few"
    return "many"
