"""Noun-phrase morphology for the aligned en/de/fr/es/it grammar.

Lexicon entries store only what cannot be derived (per-language singular/plural
forms, grammatical gender, a few flags such as French *h aspiré*).  Everything
that follows from rules lives here: German article and adjective declension by
case and gender, preposition + article contractions (``zum``, ``au``, ``del``,
``sullo``), French/Italian elision (``l'hôtel``, ``dell'acqua``), Italian
``il``/``lo``/``l'`` selection from the following sound, Romance adjective
agreement and English ``a``/``an``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MULTI_LANGS = ("en", "de", "fr", "es", "it")

_FR_VOWELS = tuple("aeiouyàâäéèêëîïôöûùüœæAEIOUYÀÂÉÈÊÎÔÛŒ")
_IT_VOWELS = tuple("aeiouàèéìòùAEIOU")
_EN_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once", "ure")
_EN_SILENT_H = ("hour", "honest", "honour", "heir")


@dataclass(frozen=True)
class Form:
    """One language's forms of a lexicon entry.

    Attributes:
        sg: Singular (or predicative / masculine) form.
        pl: Plural (or attributive stem / feminine) form.
        g: Grammatical gender ``m``/``f``/``n`` ("" where the language has none).
        flags: Extra features, e.g. ``{"h": True}`` for a French *h aspiré* or
            ``{"dir": "zu", "loc": "an"}`` for German place prepositions.
    """

    sg: str
    pl: str = ""
    g: str = ""
    flags: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Entry:
    """An aligned lexicon entry: one :class:`Form` per language plus shared features.

    Attributes:
        forms: Language code -> :class:`Form`.
        sex: Natural gender of a person (``m``/``f``) used for Romance participle
            and adjective agreement; "" for things.
        tags: Free-form semantic tags used by templates to keep combinations
            sensible (e.g. ``kin`` for family members, ``open`` for openable things).
    """

    forms: dict
    sex: str = ""
    tags: tuple = ()

    def __getitem__(self, lang: str) -> Form:
        return self.forms[lang]


def _parse_flags(tokens: list) -> dict:
    flags = {}
    for tok in tokens:
        key, _, value = tok.partition("=")
        flags[key] = value if value else True
    return flags


def parse_entry(line: str, langs: tuple = MULTI_LANGS, sex: str = "", tags: tuple = ()) -> Entry:
    """Parse one compact lexicon line into an :class:`Entry`.

    The format is ``en ; de ; fr ; es ; it`` where each segment is
    ``[g:]first|second [#flag ...]``; English has no gender prefix.  Example::

        "backpack|backpacks ; m:Rucksack|Rucksäcke ; m:sac à dos|sacs à dos ;
         f:mochila|mochilas ; m:zaino|zaini"

    Args:
        line: The lexicon line.
        langs: Language order of the segments.
        sex: Natural gender for person entries.
        tags: Semantic tags.

    Returns:
        The parsed entry.
    """
    segments = [s.strip() for s in line.split(";")]
    if len(segments) != len(langs):
        raise ValueError(f"expected {len(langs)} segments in lexicon line {line!r}")
    forms = {}
    for lang, seg in zip(langs, segments):
        body, *flag_toks = [t.strip() for t in seg.split("#")]
        gender = ""
        if len(body) > 2 and body[1] == ":" and body[0] in "mfn":
            gender, body = body[0], body[2:]
        first, _, second = body.partition("|")
        forms[lang] = Form(first.strip(), second.strip() or first.strip(), gender, _parse_flags(flag_toks))
    return Entry(forms, sex, tags)


# ----------------------------------------------------------------------------- English


def en_indefinite(word: str) -> str:
    """English indefinite article for the word that follows it (``a``/``an``)."""
    low = word.lower()
    if low.startswith(_EN_SILENT_H):
        return "an"
    if low[:1] in "aeiou" and not low.startswith(_EN_AN_EXCEPTIONS):
        return "an"
    return "a"


_EN_POSS = {"1s": "my", "1p": "our", "3m": "his", "3f": "her"}


def _np_en(entry, det, number, adj, prep, owner, **_):
    form = entry["en"]
    words = (f"{adj['en'].sg} " if adj else "") + (form.pl if number == "pl" else form.sg)
    if det == "def":
        out = f"the {words}"
    elif det == "indef":
        out = words if number == "pl" else f"{en_indefinite(words)} {words}"
    elif det == "poss":
        out = f"{_EN_POSS[owner]} {words}"
    else:
        out = words
    return f"{prep} {out}" if prep else out


# ----------------------------------------------------------------------------- German

_DE_DEF = {
    "nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
    "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"},
    "dat": {"m": "dem", "f": "der", "n": "dem", "pl": "den"},
}
# Endings of ein-words (ein, mein, sein, ihr, unser) by case and gender.
_DE_EIN = {
    "nom": {"m": "", "f": "e", "n": "", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
_DE_ADJ_WEAK = {
    "nom": {"m": "e", "f": "e", "n": "e", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "e", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
_DE_ADJ_MIXED = {
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "en"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "en"},
    "dat": {"m": "en", "f": "en", "n": "en", "pl": "en"},
}
_DE_ADJ_STRONG = {
    "nom": {"m": "er", "f": "e", "n": "es", "pl": "e"},
    "acc": {"m": "en", "f": "e", "n": "es", "pl": "e"},
    "dat": {"m": "em", "f": "er", "n": "em", "pl": "en"},
}
_DE_POSS_STEM = {"1s": "mein", "1p": "unser", "3m": "sein", "3f": "ihr"}
_DE_CONTRACT = {
    ("in", "dem"): "im", ("in", "das"): "ins", ("an", "dem"): "am", ("an", "das"): "ans",
    ("zu", "dem"): "zum", ("zu", "der"): "zur", ("von", "dem"): "vom", ("bei", "dem"): "beim",
}


def _de_dat_plural(word: str) -> str:
    # Dative plural adds -n unless the plural already ends in -n or -s (den Kindern, den Autos).
    return word if word.endswith(("n", "s")) else word + "n"


def _np_de(entry, det, case, number, adj, prep, owner, **_):
    form = entry["de"]
    slot = "pl" if number == "pl" else form.g
    noun = form.pl if number == "pl" else form.sg
    if number == "pl" and case == "dat":
        noun = _de_dat_plural(noun)
    elif number == "sg" and case != "nom" and form.flags.get("wk"):
        noun += form.flags["wk"]  # weak masculines: den Nachbarn, dem Kollegen
    if det == "def":
        article, table = _DE_DEF[case][slot], _DE_ADJ_WEAK
    elif det == "indef":
        article = "" if number == "pl" else "ein" + _DE_EIN[case][slot]
        table = _DE_ADJ_STRONG if number == "pl" else _DE_ADJ_MIXED
    elif det == "poss":
        article, table = _DE_POSS_STEM[owner] + _DE_EIN[case][slot], _DE_ADJ_MIXED
    else:
        article, table = "", _DE_ADJ_STRONG
    if adj is not None:
        noun = f"{adj['de'].pl}{table[case][slot]} {noun}"
    if prep and det == "def" and (prep, article) in _DE_CONTRACT:
        return f"{_DE_CONTRACT[(prep, article)]} {noun}"
    return " ".join(w for w in (prep, article, noun) if w)


# ----------------------------------------------------------------------------- French


def fr_elides(word: str, h_aspire: bool = False) -> bool:
    """True when a French article/preposition before ``word`` elides (``l'``, ``d'``)."""
    if h_aspire:  # le haricot, le yaourt: no elision whatever the spelling
        return False
    return word[:1] in "hH" or word.startswith(_FR_VOWELS)


def fr_join(prep: str, phrase: str, h_aspire: bool = False) -> str:
    """Join ``de``/``que``/``je``-type words to a phrase, eliding before a vowel (``d'Anna``)."""
    if prep in ("de", "que", "je", "me", "te", "se", "ne") and fr_elides(phrase, h_aspire):
        return f"{prep[:-1]}'{phrase}"
    return f"{prep} {phrase}"


_FR_POSS = {
    "1s": ("mon", "ma", "mes"), "3m": ("son", "sa", "ses"),
    "3f": ("son", "sa", "ses"), "1p": ("notre", "notre", "nos"),
}


def _np_fr(entry, det, number, adj, prep, owner, **_):
    form = entry["fr"]
    h_aspire = bool(form.flags.get("h"))
    noun = form.pl if number == "pl" else form.sg
    if adj is not None:
        adj_form = adj["fr"].pl if form.g == "f" else adj["fr"].sg
        if number == "pl" and not adj_form.endswith(("s", "x")):
            adj_form += "s"
        noun = f"{noun} {adj_form}"
    elide = fr_elides(noun, h_aspire)
    if det in ("def", "part"):
        if number == "pl":
            article = "les" if det == "def" else "des"
        else:
            article = "l'" if elide else ("la" if form.g == "f" else "le")
        if det == "part":  # du pain, de la soupe, de l'eau
            article = {"le": "du", "les": "des"}.get(article, f"de {article}")
        elif prep == "à":
            article, prep = {"le": "au", "les": "aux"}.get(article, f"à {article}"), None
        elif prep == "de":
            article, prep = {"le": "du", "les": "des"}.get(article, f"de {article}"), None
    elif det == "indef":
        article = "des" if number == "pl" else ("une" if form.g == "f" else "un")
    elif det == "poss":
        masc, fem, plural = _FR_POSS[owner]
        # "mon amie", not "ma amie": the feminine possessive cannot elide.
        article = plural if number == "pl" else (fem if form.g == "f" and not elide else masc)
    else:
        article = ""
    phrase = article + noun if article.endswith("'") else " ".join(w for w in (article, noun) if w)
    if prep:
        return fr_join(prep, phrase)
    return phrase


# ----------------------------------------------------------------------------- Spanish

_ES_POSS = {"1s": ("mi", "mi", "mis", "mis"), "3m": ("su", "su", "sus", "sus"),
            "3f": ("su", "su", "sus", "sus"), "1p": ("nuestro", "nuestra", "nuestros", "nuestras")}


def _np_es(entry, det, number, adj, prep, owner, **_):
    form = entry["es"]
    fem, plural = form.g == "f", number == "pl"
    noun = form.pl if plural else form.sg
    if adj is not None:
        adj_form = adj["es"].pl if fem else adj["es"].sg
        if plural:
            adj_form += "s" if adj_form[-1] in "aeiouáéó" else "es"
        noun = f"{noun} {adj_form}"
    if det == "def":
        article = ("las" if fem else "los") if plural else ("la" if fem else "el")
        if article == "el" and prep in ("a", "de"):  # al / del
            return f"{prep}l {noun}"
    elif det == "indef":
        article = ("unas" if fem else "unos") if plural else ("una" if fem else "un")
    elif det == "poss":
        article = _ES_POSS[owner][2 * plural + fem]
    else:
        article = ""
    return " ".join(w for w in (prep, article, noun) if w)


def es_and(left: str, right: str) -> str:
    """Spanish coordination: ``y`` becomes ``e`` before an /i/ sound (``padre e hijo``)."""
    low = right.lower()
    conj = "e" if low.startswith(("i", "hi")) and not low.startswith(("hie", "ia", "io")) else "y"
    return f"{left} {conj} {right}"


# ----------------------------------------------------------------------------- Italian


def it_article_class(word: str) -> str:
    """Sound class of an Italian word for article choice: ``vowel``, ``simp`` or ``cons``.

    ``simp`` ("s impura" and friends) takes ``lo``/``uno``/``gli``: s + consonant,
    z, gn, ps, pn, x, y.
    """
    low = word.lower()
    if low[:1] == "i" and low[1:2] in ("a", "e", "o", "u"):  # semivowel: lo iogurt
        return "simp"
    if low.startswith(_IT_VOWELS) or low[:1] == "h":  # l'hotel: the h is silent
        return "vowel"
    if low.startswith(("gn", "ps", "pn", "z", "x", "y")) or (low[:1] == "s" and low[1:2] not in "aeiou"):
        return "simp"
    return "cons"


_IT_DEF = {
    ("m", "cons"): "il", ("m", "simp"): "lo", ("m", "vowel"): "l'",
    ("f", "cons"): "la", ("f", "simp"): "la", ("f", "vowel"): "l'",
    ("mpl", "cons"): "i", ("mpl", "simp"): "gli", ("mpl", "vowel"): "gli",
    ("fpl", "cons"): "le", ("fpl", "simp"): "le", ("fpl", "vowel"): "le",
}
_IT_PREP_STEM = {"a": "a", "di": "de", "da": "da", "in": "ne", "su": "su"}
_IT_POSS = {"1s": ("mio", "mia", "miei", "mie"), "3m": ("suo", "sua", "suoi", "sue"),
            "3f": ("suo", "sua", "suoi", "sue"), "1p": ("nostro", "nostra", "nostri", "nostre")}


def it_definite(gender: str, plural: bool, next_word: str) -> str:
    """Italian definite article chosen from gender, number and the following word."""
    key = (gender + ("pl" if plural else ""), it_article_class(next_word))
    return _IT_DEF[key]


def it_contract(prep: str, article: str) -> str:
    """Articulated preposition: ``a + il -> al``, ``in + lo -> nello``, ``su + l' -> sull'``."""
    if prep not in _IT_PREP_STEM:
        return f"{prep} {article}"
    stem = _IT_PREP_STEM[prep]
    if article in ("i", "gli"):  # ai, dei, negli, sugli
        return stem + article
    if article == "il":
        return stem + "l"
    return stem + "l" + article  # lo -> llo, la -> lla, l' -> ll', le -> lle


def it_join(word: str, phrase: str) -> str:
    """Glue an elided article (``l'``, ``dell'``, ``un'``) to its word, else join with a space."""
    return word + phrase if word.endswith("'") else f"{word} {phrase}"


def _np_it(entry, det, number, adj, prep, owner, **_):
    form = entry["it"]
    fem, plural = form.g == "f", number == "pl"
    noun = form.pl if plural else form.sg
    if adj is not None:
        adj_form = adj["it"].pl if fem else adj["it"].sg
        if plural:
            adj_form = adj_form[:-1] + ("e" if fem and adj_form.endswith("a") else "i")
        noun = f"{noun} {adj_form}"
    gender = "f" if fem else "m"
    if det == "poss":
        poss = _IT_POSS[owner][2 * plural + fem]
        if entry.tags and "kin" in entry.tags and not plural and adj is None:
            # Singular kinship nouns drop the article: "mia sorella", "a suo padre".
            return " ".join(w for w in (prep, poss, noun) if w)
        article = it_definite(gender, plural, poss)
        noun = f"{poss} {noun}"
    elif det == "part":  # del pane, dell'acqua, dello zucchero
        phrase = it_join(it_contract("di", it_definite(gender, plural, noun)), noun)
        return f"{prep} {phrase}" if prep else phrase
    elif det == "def":
        article = it_definite(gender, plural, noun)
    elif det == "indef":
        if plural:
            article = it_contract("di", it_definite(gender, True, noun))
        else:
            cls = it_article_class(noun)
            article = ("un'" if cls == "vowel" else "una") if fem else ("uno" if cls == "simp" else "un")
        return " ".join(w for w in (prep, it_join(article, noun)) if w)
    else:
        return " ".join(w for w in (prep, noun) if w)
    if prep:
        article, prep = it_contract(prep, article), None
    return it_join(article, noun)


_NP = {"en": _np_en, "de": _np_de, "fr": _np_fr, "es": _np_es, "it": _np_it}


def noun_phrase(entry: Entry, lang: str, det: str = "def", case: str = "nom", number: str = "sg",
                adj: Entry | None = None, prep: str | None = None, owner: str = "3m") -> str:
    """Realise a noun phrase with correct determiner, agreement and contractions.

    Args:
        entry: The noun (an :class:`Entry` with forms for ``lang``).
        lang: ``en``, ``de``, ``fr``, ``es`` or ``it``.
        det: ``def``, ``indef``, ``poss`` (possessive of ``owner``), ``part``
            (French/Italian partitive) or ``bare``.
        case: German case ``nom``/``acc``/``dat`` (ignored elsewhere).
        number: ``sg`` or ``pl``.
        adj: Optional attributive adjective entry (before the noun in en/de,
            after it in fr/es/it).
        prep: Optional preposition that may contract with the article
            (de ``zu dem -> zum``, fr ``à le -> au``, es ``de el -> del``,
            it ``su lo -> sullo``).
        owner: Possessor for ``det="poss"``: ``1s`` (my), ``1p`` (our), ``3m``
            (his), ``3f`` (her).

    Returns:
        The noun phrase, e.g. ``noun_phrase(dog, "de", case="acc") == "den Hund"``.
    """
    return _NP[lang](entry, det=det, case=case, number=number, adj=adj, prep=prep, owner=owner)
