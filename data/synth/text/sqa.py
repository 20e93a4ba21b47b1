"""Spoken-QA items: short English passages about a person plus extractive questions (SQuAD style).

A random *fact frame* (name, home city, job, workplace, relative, hobby, ...) is
realised by varied sentence templates.  While a template is filled, the offset
of every field value in the final passage is recorded, so each answer's
``answer_start`` points at the occurrence that actually states the fact; the
generator also keeps the answerable values pairwise distinct (three different
cities, different numbers) so no answer string is ambiguous in its passage.
"""

from __future__ import annotations

import random
from string import Formatter

from . import lexicon_en as lx
from .grammar import pick
from .morph import en_indefinite
from .numbers import number_words

CONTEXT_WORDS = (40, 90)
CONTEXT_SENTENCES = (3, 6)

# Job -> plausible workplaces.
JOBS = {
    "nurse": ("the city hospital", "a small clinic near the harbour"),
    "teacher": ("the primary school", "a secondary school in the old town"),
    "baker": ("a bakery near the station", "the family bakery on the market square"),
    "engineer": ("an engineering firm", "the power station outside town"),
    "librarian": ("the public library", "the university library"),
    "chef": ("an Italian restaurant", "a busy hotel kitchen"),
    "pharmacist": ("the pharmacy on the high street", "a pharmacy next to the hospital"),
    "mechanic": ("a garage on the edge of town", "the bus depot"),
    "journalist": ("the local newspaper", "a radio station"),
    "gardener": ("the botanical garden", "a large country estate"),
    "accountant": ("a bank in the city centre", "a small accounting office"),
    "vet": ("an animal clinic", "a farm practice in the valley"),
    "photographer": ("a small studio", "the city museum"),
    "pilot": ("the regional airport", "a small airline"),
    "architect": ("a design office", "the planning department"),
    "bus driver": ("the city transport company", "a coach company"),
    "waiter": ("a café by the river", "a seaside restaurant"),
    "postman": ("the main post office", "the village post office"),
    "firefighter": ("the central fire station", "the fire station by the park"),
    "dentist": ("a dental practice", "the children's hospital"),
    "lecturer": ("the university", "a music college"),
    "shop assistant": ("a bookshop", "a shoe shop", "the department store"),
}
HOBBIES = ("painting", "playing the violin", "growing tomatoes", "running in the park", "playing chess",
           "baking bread", "reading detective novels", "swimming", "birdwatching", "knitting", "playing football",
           "taking photographs", "hiking in the hills", "singing in a choir", "fishing", "cycling", "sailing",
           "writing poetry")
FOODS = ("lasagne", "fish and chips", "mushroom soup", "apple pie", "roast chicken", "vegetable curry",
         "pancakes with honey", "spaghetti", "potato salad", "chocolate cake", "tomato soup", "fried rice",
         "cheese omelette", "lemon cake")
PETS = ("cats", "dogs", "rabbits", "parrots", "goldfish", "hens", "tortoises", "hamsters")
COMMUTES = ("by bus", "by bike", "on foot", "by train", "by car", "by tram")
STARTS = ("seven o'clock", "half past eight", "nine o'clock", "a quarter past seven", "six in the morning",
          "eight thirty", "ten o'clock", "half past six")
RELATIONS = {"sister": "f", "brother": "m", "aunt": "f", "uncle": "m", "grandmother": "f", "grandfather": "m",
             "cousin": "f", "best friend": "m"}

INTROS = (
    "{full} is {a} {job} who lives in {city}.",
    "{full} lives in {city}, where {she} works as {a} {job}.",
    "{full} is {age} years old and lives in {city}.",
    "Born in {hometown}, {full} moved to {city} {years} ago.",
)
# Each fact key -> templates that state it; fields other than pronouns are answerable.
BODY = {
    "workplace": ("{She} works as {a} {job} at {workplace}.", "{She} is {a} {job} at {workplace}."),
    "workplace_only": ("{She} works at {workplace}.", "Most days {she} can be found at {workplace}."),
    "commute": ("Every morning {she} goes to work {commute} and starts at {start}.",
                "{Her} working day begins at {start}, and {she} usually travels {commute}."),
    "relative": ("{Her} {relation}, {rel_name}, lives in {rel_city}.",
                 "{She} visits {her} {relation} {rel_name} in {rel_city} every {visit_day}.",
                 "On {visit_day}s {she} often visits {her} {relation}, {rel_name}, who lives in {rel_city}."),
    "pets": ("{She} has {pets} {pet_kind} at home.", "At home {she} looks after {pets} {pet_kind}."),
    "hobby": ("In {her} free time {she} enjoys {hobby}.", "{Her} favourite hobby is {hobby}."),
    "food": ("{Her} favourite food is {food}.", "When friends come to dinner, {she} likes to make {food}, "
             "which is {her} favourite food."),
    "age": ("{She} is {age} years old.", "{She} turned {age} this year."),
    "hometown": ("{She} was born in {hometown}.", "{She} grew up in {hometown}."),
    "years": ("{She} has lived in {city} for {years}.",),
}
QUESTIONS = {
    "full": ("Who lives in {city}?", "What is the name of the person who lives in {city}?"),
    "city": ("Where does {first} live?", "In which city does {first} live?"),
    "job": ("What does {first} do for a living?", "What is {first}'s job?"),
    "workplace": ("Where does {first} work?",),
    "age": ("How old is {first}?",),
    "hometown": ("Where was {first} born?", "Which city does {first} come from?"),
    "years": ("How long has {first} lived in {city}?", "How long ago did {first} move to {city}?"),
    "commute": ("How does {first} get to work?",),
    "start": ("What time does {first} start work?", "When does {first}'s working day begin?"),
    "rel_name": ("What is the name of {first}'s {relation}?",),
    "rel_city": ("Where does {first}'s {relation} live?",),
    "visit_day": ("On which day does {first} visit {her} {relation}?",),
    "pets": ("How many {pet_kind} does {first} have?",),
    "hobby": ("What does {first} enjoy doing in {her} free time?", "What is {first}'s favourite hobby?"),
    "food": ("What is {first}'s favourite food?",),
}
_PRONOUNS = ("she", "She", "her", "Her")


def render(template: str, values: dict) -> tuple:
    """Fill ``template`` and record where each field's value starts.

    Args:
        template: A ``str.format`` template with named fields only.
        values: Field name -> text.

    Returns:
        ``(text, {field: offset of its first occurrence})``.
    """
    parts, spans, pos = [], {}, 0
    for literal, field, _, _ in Formatter().parse(template):
        parts.append(literal)
        pos += len(literal)
        if field is not None:
            value = values[field]
            spans.setdefault(field, pos)
            parts.append(value)
            pos += len(value)
    return "".join(parts), spans


def _distinct(rng: random.Random, pool, k: int) -> list:
    """``k`` distinct items of ``pool`` drawn in a deterministic order."""
    chosen: list = []
    while len(chosen) < k:
        item = pick(rng, pool)
        if item not in chosen:
            chosen.append(item)
    return chosen


def fact_frame(rng: random.Random) -> dict:
    """Draw the facts of one passage as template field values."""
    female = rng.random() < 0.5
    first = pick(rng, lx.NAMES_F if female else lx.NAMES_M)
    relation = pick(rng, tuple(RELATIONS))
    rel_name = pick(rng, tuple(n for n in (lx.NAMES_F if RELATIONS[relation] == "f" else lx.NAMES_M) if n != first))
    city, hometown, rel_city = _distinct(rng, lx.CITIES, 3)
    # Numbers are kept distinct so that "how many" answers never collide with the age.
    age_n, years_n, pets_n = _distinct(rng, range(2, 80), 3)
    age_n = max(age_n, 18 + age_n % 50)
    while age_n in (years_n, pets_n):
        age_n += 1
    job = pick(rng, tuple(JOBS))
    pets = number_words(2 + pets_n % 5, "en")
    years_n = 2 + years_n % 30
    while years_n == age_n or number_words(years_n, "en") == pets:
        years_n += 1
    years = number_words(years_n, "en")
    return {
        "first": first, "full": f"{first} {pick(rng, lx.SURNAMES)}", "she": "she" if female else "he",
        "She": "She" if female else "He", "her": "her" if female else "his", "Her": "Her" if female else "His",
        "city": city, "hometown": hometown, "rel_city": rel_city, "job": job, "a": en_indefinite(job),
        "workplace": pick(rng, JOBS[job]), "age": number_words(age_n, "en"), "years": f"{years} years",
        "commute": pick(rng, COMMUTES), "start": pick(rng, STARTS), "relation": relation, "rel_name": rel_name,
        "visit_day": pick(rng, lx.WEEKDAYS), "pets": pets, "pet_kind": pick(rng, PETS), "hobby": pick(rng, HOBBIES),
        "food": pick(rng, FOODS),
    }


def _passage(rng: random.Random, facts: dict) -> tuple:
    intro = pick(rng, INTROS)
    stated = set(f for _, f, _, _ in Formatter().parse(intro) if f)
    keys = [k for k in BODY if not (k == "age" and "age" in stated) and not (k == "hometown" and "hometown" in stated)
            and not (k == "years" and "years" in stated)]
    # Job must be introduced once: either by the intro or by the "workplace" template.
    keys.remove("workplace_only" if "job" not in stated else "workplace")
    n_body = rng.randint(CONTEXT_SENTENCES[0] - 1, CONTEXT_SENTENCES[1] - 1)
    chosen = []
    for _ in range(n_body):
        key = pick(rng, keys)
        keys.remove(key)
        chosen.append(key)
        if not keys:
            break
    sentences = [intro] + [pick(rng, BODY[k]) for k in chosen]
    text, spans = "", {}
    for template in sentences:
        sentence, local = render(template, facts)
        offset = len(text) + (1 if text else 0)
        for field, start in local.items():
            spans.setdefault(field, offset + start)
        text = f"{text} {sentence}" if text else sentence
    return text, spans


def sqa_example(rng: random.Random) -> dict:
    """A spoken-QA item.

    Args:
        rng: Random source (the only one used).

    Returns:
        ``{"context": str, "qas": [{"question", "answer", "answer_start"}, ...]}``
        with 3-6 sentences / 40-90 words of context and 2-4 questions whose
        answers are exact spans: ``context[start:start + len(answer)] == answer``.
    """
    facts = fact_frame(rng)
    while True:
        context, spans = _passage(rng, facts)
        n_words = len(context.split())
        if CONTEXT_WORDS[0] <= n_words <= CONTEXT_WORDS[1]:
            break
    answerable = [k for k in QUESTIONS if k in spans and k not in _PRONOUNS]
    n_q = min(len(answerable), rng.randint(2, 4))
    qas = []
    for key in _distinct(rng, answerable, n_q):
        question, _ = render(pick(rng, QUESTIONS[key]), facts)
        answer, start = facts[key], spans[key]
        assert context[start:start + len(answer)] == answer
        qas.append({"question": question, "answer": answer, "answer_start": start})
    return {"context": context, "qas": qas}
