"""English sentence grammar: everyday and narrative text in a LibriSpeech / Common Voice register.

The grammar is a :class:`~data.synth.text.grammar.Grammar` whose sentence templates
(``SENTENCES``) pick subjects by number (``{S3}`` third singular, ``{SP}``
plural, ``{SX}`` any person for tenses without agreement) and verb phrases by
tense (``{vp_3s}``, ``{vp_base}``, ``{vp_past}``, ``{vp_ing}``, ``{vp_pp}``).  A
verb phrase is a verb from :data:`~data.synth.text.lexicon_en.VERBS` followed by a
complement symbol tied to that verb, so objects stay plausible.  ``a``/``an`` is
settled in one pass at the end (:func:`fix_articles`).
"""

from __future__ import annotations

import random
import re

from . import lexicon_en as lx
from .grammar import Grammar, finish_sentence, pick
from .morph import en_indefinite
from .numbers import en_ordinal, en_year, number_words


def _parse_verbs(text: str) -> tuple:
    verbs = []
    for line in text.strip().splitlines():
        forms, _, comp = line.partition(":")
        verbs.append((tuple(f.strip() for f in forms.split("|")), comp.strip()))
    return tuple(verbs)


VERB_TABLE = _parse_verbs(lx.VERBS)
_FORM_INDEX = {"base": 0, "3s": 1, "past": 2, "ing": 3, "pp": 4}
_FLYERS = ("owl", "crow", "sparrow", "robin", "eagle", "hawk", "bee", "butterfly", "seagull", "heron", "pigeon",
           "parrot")
_SWIMMERS = ("duck", "swan", "otter", "frog", "goose")


def en_plural(noun: str) -> str:
    """Plural of a (possibly multi-word) English noun phrase, inflecting the last word."""
    head, _, last = noun.rpartition(" ")
    if last.endswith("man"):
        last = last[:-3] + "men"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    elif last.endswith(("s", "x", "ch", "sh")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


def fix_articles(text: str) -> str:
    """Replace every ``a``/``an`` by the form the following word requires."""
    def _sub(m: re.Match) -> str:
        art = en_indefinite(m.group(2))
        return (art.capitalize() if m.group(1)[0] == "A" else art) + " " + m.group(2)

    return re.sub(r"\b(an?|An?) ([A-Za-z]+)", _sub, text)


def _vp(form: str):
    def rule(rng: random.Random) -> str:
        forms, comp = pick(rng, VERB_TABLE)
        return f"{forms[_FORM_INDEX[form]]} {{{comp}}}"
    return rule


def _num(lo: int, hi: int):
    return lambda rng: number_words(rng.randint(lo, hi), "en")


def _two_colours(rng: random.Random) -> str:
    a = pick(rng, lx.COLOURS)
    b = pick(rng, tuple(c for c in lx.COLOURS if c != a))
    return f"the {a} one or the {b} one"


def _animal_scene(rng: random.Random) -> str:
    sg, _ = pick(rng, lx.ANIMALS)
    if sg in _FLYERS:
        return f"{sg} flew {pick(rng, ('over', 'across', 'above'))} the {{nature_place}}"
    if sg in _SWIMMERS:
        return f"{sg} swam {pick(rng, ('across', 'along', 'through'))} the {{water}}"
    return f"{sg} {pick(rng, ('ran', 'wandered', 'hurried', 'walked slowly'))} across the {{field_like}}"


RULES = {
    # --- people
    "name": lx.NAMES_F + lx.NAMES_M, "fname": lx.NAMES_F, "mname": lx.NAMES_M, "surname": lx.SURNAMES,
    "title": lx.TITLES, "full_name": ["{name} {surname}"], "relative": lx.RELATIVES,
    "occupation": lx.OCCUPATIONS, "occupation_pl": lambda rng: en_plural(pick(rng, lx.OCCUPATIONS)),
    "a_occupation": ["a {occupation}", "a {adj_person} {occupation}"],
    "poss": ["my", "his", "her", "our", "their", "your"],
    "S3": ["{name}", "{name}", "{name}", "{full_name}", "{title} {surname}", "my {relative}", "her {relative}",
           "his {relative}", "the {occupation}", "the {adj_person} {occupation}", "the old man", "the little girl",
           "a {occupation} from {city}", "our new neighbour", "{name}'s {relative}", "Aunt {fname}", "Uncle {mname}"],
    "SP": ["we", "they", "my parents", "the children", "the students", "our neighbours", "{name} and {name}",
           "my friends", "the farmers", "the tourists", "my grandparents", "the {occupation_pl}", "{name} and I"],
    "SX": ["{S3}", "{S3}", "{SP}", "I", "I", "you"],
    "person_obj": ["{name}", "{name}", "{poss} {relative}", "the {occupation}", "{title} {surname}", "our neighbours",
                   "an old friend", "{full_name}"],
    # --- places, things, nature
    "city": lx.CITIES, "country": lx.COUNTRIES, "place": lx.PLACES, "workplace": lx.WORKPLACES,
    "nature_place": lx.NATURE_PLACES, "water": lx.WATERS, "field_like": ["field", "meadow", "road", "garden", "hill",
                                                                          "yard", "square", "moor"],
    "nature_noun": lx.NATURE_NOUNS, "nature_adj": lx.NATURE_ADJS, "weather_adj": lx.WEATHER_ADJS,
    "thing": lx.THINGS, "openable": lx.OPENABLES, "furniture": lx.FURNITURE, "container": lx.CONTAINERS,
    "adj_thing": lx.ADJ_THING, "adj_person": lx.ADJ_PERSON, "adj_feeling": lx.ADJ_FEELING, "adj_place": lx.ADJ_PLACE,
    "adj_food": lx.ADJ_FOOD, "colour": lx.COLOURS, "a_thing": ["a {thing}", "a {adj_thing} {thing}"],
    "the_thing": ["the {thing}", "the {adj_thing} {thing}"],
    "animal": lambda rng: pick(rng, lx.ANIMALS)[0], "animal_pl": lambda rng: pick(rng, lx.ANIMALS)[1],
    "food_mass": lx.FOOD_MASS, "food_count": lambda rng: pick(rng, lx.FOOD_COUNT)[0],
    "food_pl": lambda rng: pick(rng, lx.FOOD_COUNT)[1], "drink": lx.DRINKS,
    "topic": lx.TOPICS, "subject": lx.SUBJECTS, "game": lx.GAMES, "event": lx.EVENTS, "meal": lx.MEALS,
    "season": lx.SEASONS, "weekday": lx.WEEKDAYS, "month": lx.MONTHS, "transport": lx.TRANSPORT,
    "vehicle": ["train", "bus", "ferry", "coach", "plane", "last train", "night bus", "boat"],
    "building": ["cottage", "house", "barn", "church", "tower", "mill", "cabin", "farmhouse", "chapel", "inn"],
    "shop": ["bakery", "bookshop", "small café", "flower shop", "restaurant", "hat shop", "toy shop", "tea room"],
    "place_loc": ["in the garden", "at the {place}", "in the kitchen", "upstairs", "at home", "in the park",
                  "in {city}", "on the train", "in the living room", "by the river", "in the forest"],
    "time_past": lx.TIME_PAST, "time_fut": lx.TIME_FUT, "time_hab": lx.TIME_HAB,
    "time_of_day": ["morning", "afternoon", "evening", "night", "day"],
    # --- numbers (always words)
    "num_small": _num(2, 12), "num": _num(2, 99), "num_big": _num(100, 5000),
    "year": lambda rng: en_year(rng.randint(1900, 2023)),
    "ordinal": lambda rng: en_ordinal(rng.randint(1, 31)), "hour": _num(1, 12),
    "clock": ["{hour} o'clock", "half past {hour}", "a quarter past {hour}", "a quarter to {hour}",
              "{hour} in the morning", "{hour} in the evening", "noon", "midnight", "{hour} {minutes}"],
    "minutes": ["fifteen", "thirty", "forty-five", "twenty", "ten", "fifty"],
    "price": ["{num} pounds", "{num} dollars", "{num} euros", "{num} pounds {minutes}", "{num_big} pounds"],
    "two_colours": _two_colours, "animal_scene": _animal_scene,
    # --- verb phrases
    "vp_3s": _vp("3s"), "vp_base": _vp("base"), "vp_past": _vp("past"), "vp_ing": _vp("ing"), "vp_pp": _vp("pp"),
}

# Complement of each verb (symbol named in lexicon_en.VERBS).
COMPLEMENTS = {
    "food_obj": ["some {food_mass}", "the {food_mass}", "a {food_count}", "{num_small} {food_pl}",
                 "the {adj_food} {food_mass}", "a plate of {food_pl}", "{food_pl} for {meal}", "a bowl of soup"],
    "dish_obj": ["dinner", "lunch", "breakfast for everyone", "a {adj_food} soup", "{food_mass} for {meal}",
                 "a big pot of stew", "pancakes for the children", "a meal for {num_small} people",
                 "{food_pl} with {food_mass}"],
    "buy_obj": ["{a_thing}", "{num_small} {food_pl}", "some {food_mass}", "a ticket to {city}",
                "a present for {poss} {relative}", "{a_thing} for {name}", "a new {thing}", "flowers for {name}"],
    "sell_obj": ["{poss} old {thing}", "{food_pl} at the market", "fresh {food_mass}", "tickets for the {event}",
                 "the house in {city}", "{poss} car"],
    "carry_obj": ["{poss} heavy {thing}", "a basket of {food_pl}", "the shopping", "a box of books", "the baby",
                  "{the_thing} up the stairs"],
    "find_obj": ["{a_thing} in the attic", "{poss} {thing}", "the {thing} under the {furniture}",
                 "an old photograph", "a strange letter", "a coin in the garden", "the answer",
                 "{a_thing} on the train"],
    "lose_obj": ["{poss} {thing}", "the keys", "{poss} way in the forest", "the tickets", "the map", "the match"],
    "open_obj": ["the {openable}", "the {openable} slowly", "the old {openable}"],
    "clean_obj": ["the kitchen", "the windows", "the car", "{poss} room", "the bathroom", "the floor",
                  "the whole house", "the {thing}"],
    "paint_obj": ["the fence", "the kitchen", "the front door", "a picture of the {nature_place}", "the walls {colour}",
                  "a portrait of {poss} {relative}"],
    "fix_obj": ["the {thing}", "{poss} bicycle", "the roof", "the old clock", "the fence", "the kitchen tap",
                "the broken {thing}", "the car"],
    "read_obj": ["a book", "the newspaper", "{poss} letters", "a long letter from {name}", "a story about {topic}",
                 "a book about {topic}", "the instructions", "a poem", "the menu", "a magazine", "the report"],
    "write_obj": ["a letter to {poss} {relative}", "a short story", "a poem about {topic}", "an email to {name}",
                  "a report about {topic}", "a postcard to {name}", "a song", "a list", "in {poss} diary"],
    "wash_obj": ["the dishes", "the car", "{poss} hands", "the clothes", "the dog", "the windows", "{poss} hair"],
    "borrow_obj": ["a book from the library", "{name}'s bicycle", "some money", "an umbrella",
                   "{poss} {relative}'s car", "a pen"],
    "bring_obj": ["{a_thing}", "some {food_mass}", "flowers", "a cake", "the children", "{poss} {relative}",
                  "a bottle of {drink}", "good news"],
    "visit_obj": ["{person_obj}", "the {place}", "{city}", "{poss} grandparents", "the museum in {city}", "{country}",
                  "the old castle", "the {nature_place}"],
    "call_obj": ["{person_obj}", "a taxi", "the doctor", "the police", "{poss} {relative} in {city}"],
    "meet_obj": ["{person_obj} at the {place}", "{person_obj} for lunch", "{person_obj} in {city}",
                 "{person_obj} after work", "a friend from school"],
    "help_obj": ["{person_obj}", "{person_obj} in the garden", "the old man", "{name} with the shopping",
                 "{person_obj} with the boxes", "the children with their homework"],
    "show_obj": ["a film", "the news", "a football match", "a documentary about {topic}", "the sunset",
                 "the birds in the garden", "the children", "the rain", "a play at the theatre", "the {animal_pl}"],
    "game_obj": ["{game}", "{game} with {person_obj}", "{game} in the {nature_place}", "a game of chess",
                 "a game of cards"],
    "drink_obj": ["a cup of tea", "a glass of {drink}", "some {drink}", "hot chocolate", "a cup of coffee", "{drink}"],
    "build_obj": ["a wooden shed", "a sandcastle", "a snowman", "a new fence", "a house in {country}", "a small boat",
                  "a bird table", "a wall in the garden", "a bridge over the stream"],
    "draw_obj": ["a picture of {poss} {relative}", "a map of {city}", "a {animal}", "the {nature_place}",
                 "a plan of the house", "the old {place}", "the curtains"],
    "plant_obj": ["some roses", "a small apple tree", "potatoes", "tomatoes in the garden", "new flowers", "a tree",
                  "seeds in the {nature_place}"],
    "fruit_obj": ["apples", "cherries", "strawberries", "blackberries", "plums", "pears", "mushrooms in the forest",
                  "flowers for {name}", "a card for {name}"],
    "feed_obj": ["the ducks", "the cat", "the horses", "the chickens", "{poss} dog", "the {animal_pl}", "the baby",
                 "the birds"],
    "catch_obj": ["the bus", "the last train", "the early train", "a fish", "a cold", "the ball",
                  "a big fish in the {water}", "the train to {city}"],
    "walk_comp": ["to the {place}", "along the river", "along the coast", "through the forest", "through the park",
                  "home", "across the field", "up the hill", "down to the river", "to work", "to school",
                  "with {poss} dog", "for an hour"],
    "run_comp": ["to the {place}", "along the beach", "in the park", "around the lake", "for the bus", "a marathon",
                 "home"],
    "swim_comp": ["in the {water}", "across the lake", "in the sea", "with {poss} {relative}", "for an hour"],
    "sleep_comp": ["for {num_small} hours", "on the sofa", "in the garden", "until noon", "badly", "very well",
                   "in a tent", "on the train"],
    "work_comp": ["at the {workplace}", "in {city}", "from home", "late", "in the garden", "on a new project",
                  "with {person_obj}", "as {a_occupation}"],
    "sing_comp": ["an old song", "in the choir", "to the baby", "with {poss} friends", "in the kitchen",
                  "a song about {topic}"],
    "dance_comp": ["at the party", "in the kitchen", "all night", "with {name}", "at the wedding", "in the rain"],
    "study_comp": ["for {poss} exams", "{subject}", "{subject} at the university", "in the library",
                   "{subject} in {city}", "late into the night"],
    "teach_comp": ["{subject} at a school in {city}", "the children to read", "{subject}", "{person_obj} to swim",
                   "music to {num_small} pupils"],
    "learn_comp": ["to swim", "to drive", "to play the piano", "{subject}", "a new song", "to cook",
                   "to ride a bicycle", "the names of the {animal_pl}", "the way home"],
    "rent_obj": ["a small flat in {city}", "a car", "a cottage by the sea", "bicycles", "a boat",
                 "a room near the {place}"],
    "order_obj": ["a pizza", "a taxi", "new books", "a cup of tea", "a {food_count}", "a new {thing}",
                  "dinner for {num_small} people"],
    "pack_obj": ["{poss} suitcase", "a picnic", "the car", "lunch for the children", "{poss} things",
                 "a bag for the trip"],
    "check_obj": ["the timetable", "the weather forecast", "{poss} emails", "the map", "the tyres", "the time",
                  "the price of the tickets", "the address"],
    "climb_obj": ["the hill", "the tall tree", "the stairs", "a mountain in {country}", "the old tower",
                  "over the wall", "the ladder"],
    "cross_obj": ["the road", "the river", "the bridge", "the street carefully", "the square", "the field",
                  "the border"],
    "leave_obj": ["the house early", "the office at {clock}", "{city}", "the party", "{poss} umbrella on the train",
                  "a note on the table", "school", "the room"],
    "bake_obj": ["a cake", "bread", "biscuits", "an apple pie", "a birthday cake for {name}", "scones",
                 "a loaf of bread"],
    "travel_comp": ["to {city}", "to {country}", "around {country}", "across {country} {transport}", "{transport}",
                    "abroad", "to {city} for work", "with {person_obj}"],
    "drive_comp": ["to {city}", "the children to school", "home", "a red car", "to the {place}", "very carefully",
                   "through the night", "a bus"],
    "ride_obj": ["a horse", "a bicycle", "{poss} bike to school", "the bus to work", "a pony",
                 "the train to {city}"],
    "listen_comp": ["to the radio", "to music", "to the rain", "to {person_obj}", "to the birds", "carefully",
                    "to the news", "to an old song"],
    "look_comp": ["at the stars", "at the map", "for {poss} keys", "out of the window", "after the children",
                  "at the {animal_pl}", "at the old photographs", "for a new job", "at the sea"],
    "talk_comp": ["to {person_obj}", "about the weather", "on the phone", "about {topic}", "for hours",
                  "with {person_obj} about the {event}"],
    "think_comp": ["about {topic}", "about the future", "about {poss} holiday", "about {person_obj}",
                   "about moving to {city}", "for a long time"],
    "wait_comp": ["for the bus", "for {person_obj}", "at the {place}", "outside the {place}",
                  "for the rain to stop", "for a long time", "patiently"],
    "invite_obj": ["{person_obj} to the {event}", "{person_obj} for dinner", "everyone to the {event}",
                   "the neighbours for tea"],
    "tell_obj": ["{person_obj} a story", "the truth", "{person_obj} about {topic}", "a joke",
                 "the children a story", "{person_obj} the news"],
    "show_to_obj": ["{person_obj} the way to the {place}", "{person_obj} {poss} photographs",
                    "the visitors around the {place}", "{person_obj} the garden", "us the new {thing}"],
    "ask_obj": ["{person_obj} for help", "a question", "the way to the {place}", "{person_obj} about the {event}",
                "for the bill", "{person_obj} to dance"],
    "answer_obj": ["the phone", "the letter", "all the questions", "the door", "{name}'s email"],
    "forget_obj": ["{poss} keys", "the tickets", "{name}'s birthday", "the address", "to lock the door",
                   "{poss} umbrella", "the name of the street", "to buy {food_mass}"],
    "remember_obj": ["the address", "{name}'s phone number", "the name of the street", "to buy {food_mass}",
                     "the old days", "every word", "the way to the {place}"],
    "enjoy_obj": ["the concert", "the walk", "the food", "the view from the hill", "the film", "the {event}",
                  "the trip to {city}", "the sunshine", "the book"],
    "hear_obj": ["a strange noise", "the birds", "the church bells", "the news", "a knock at the door",
                 "the rain on the roof", "music from the {place}", "{name} singing"],
    "see_obj": ["a fox in the garden", "{name} at the market", "a rainbow", "the sea", "an old friend",
                "a {adj_thing} {animal}", "the lights of {city}", "a film", "the doctor"],
    "cut_obj": ["the grass", "the bread", "the paper", "{poss} hair", "the cake", "the rope", "the flowers"],
    "fly_comp": ["to {city}", "a kite", "home", "over the mountains", "to {country}", "across the ocean"],
    "send_obj": ["a letter to {person_obj}", "a parcel to {city}", "flowers to {poss} {relative}",
                 "a message to {name}", "a postcard from {city}", "{person_obj} a present"],
    "collect_obj": ["stamps", "old coins", "shells on the beach", "the children from school", "wood for the fire",
                    "{name} from the station", "the post", "money for the {event}"],
}

# Sentence templates.  Core tense patterns are listed more than once to weight them.
SENTENCES = (
    # statements across tenses and persons
    "{S3} {vp_3s} {time_hab}.", "{S3} {vp_3s} {time_hab}.", "{SP} {vp_base} {time_hab}.",
    "{SX} {vp_past} {time_past}.", "{SX} {vp_past} {time_past}.", "{SX} {vp_past}.",
    "{SX} will {vp_base} {time_fut}.", "{SX} will {vp_base} {time_fut}.", "{S3} is {vp_ing} {place_loc} right now.",
    "{SP} are {vp_ing} {place_loc}.", "I am {vp_ing} at the moment.", "{S3} has just {vp_pp}.",
    "{SP} have already {vp_pp}.", "{SP} were {vp_ing} when the phone rang.", "{S3} was {vp_ing} when {name} came in.",
    "{SP} usually {vp_base} on {weekday}s.", "I think {S3} {vp_3s} {time_hab}.",
    "While {fname} was {vp_ing}, her {relative} {vp_past}.", "When {mname} arrived at the {place}, he {vp_past}.",
    "After {meal}, {SX} {vp_past}.", "Before {meal}, {SP} usually {vp_base}.",
    "On the {ordinal} of {month}, {SX} {vp_past}.", "{S3} wants to {vp_base} before the {event}.",
    "If it rains tomorrow, {SP} will {vp_base} instead.", "{S3} can't {vp_base} because the {place} is closed.",
    "Please {chore} before you leave.", "Don't forget to {chore} {time_fut}.",
    "The {occupation} asked {name} to {vp_base}.", "{S3} gave {person_obj} {a_thing} for {occasion}.",
    # questions
    "Did you {vp_base} {time_past}?", "Does {S3} {vp_base} {time_hab}?", "Are you going to {vp_base} {time_fut}?",
    "Have you ever {vp_pp}?", "Why did {SX} {vp_base}?", "Who is going to {vp_base}?",
    "What time does the {place} open on {weekday}s?", "How many {food_pl} did you buy?",
    "Why is the {place} closed today?", "Where did you put the {thing}?", "Is it far from here to the {place}?",
    "Which {thing} do you prefer, {two_colours}?", "Have you ever been to {city}?",
    "How long does it take to get to {city} {transport}?", "Could you tell me where the nearest {place} is?",
    "Would you like a cup of tea?", "Can I borrow your {thing} until {weekday}?",
    "What did {S3} say about the {event}?",
    # numbers, dates, times
    "{name} has lived in {city} for {num_small} years.", "{full_name} was born in {city} in {year}.",
    "{name} and {name} got married in {city} in {year}.", "The {vehicle} to {city} leaves at {clock}.",
    "The {thing} costs {price}.", "There are {num} {animal_pl} on the farm.",
    "We need {num_small} {food_pl} for the {event}.", "The {event} starts at {clock} on {weekday}.",
    "Our train was {num} minutes late.", "The {place} is {num_small} miles from here.",
    "My {relative} is {num} years old.", "In {year}, {full_name} moved to {city} and opened a {shop}.",
    "We spent {num_small} days in {city} and then travelled to {city}.",
    "About {num_big} people came to the {event} last {season}.",
    # descriptions and narrative
    "{name}'s {relative} is a {adj_person} {occupation}.", "There is {a_thing} on the {furniture}.",
    "The {place} was very {adj_place} {time_past}.", "The {animal_pl} are sleeping in the {nature_place}.",
    "It was a {weather_adj} {time_of_day} in {month}, and the {nature_noun} was {nature_adj}.",
    "The old {man_word} looked at the {nature_noun} and smiled.", "The {animal_scene}.",
    "{fname} opened the {container} and found {a_thing} inside.",
    "{S3} looked out of the window and saw a {adj_thing} {animal} in the garden.",
    "At the end of the {nature_place} there was a {adj_thing} {building}.",
    "It was too {weather_adj} to go out, so {SX} stayed at home.", "I haven't seen {name} since {since}.",
    "My favourite {fav}.", "{S3} was {adj_feeling} because the {vehicle} was late.",
    "Nobody knew why the {place} was closed.", "The {adj_food} {food_mass} smelled wonderful.",
    # exclamations
    "What a {adj_thing} {thing}!", "What a lovely day!", "Be careful, {danger}!",
    "Hurry up, or we will miss the {vehicle}!",
)

RULES.update(COMPLEMENTS)
RULES.update({
    "chore": ["close the {openable}", "check the timetable", "call {person_obj}", "pack {poss} suitcase",
              "wash the dishes", "feed the cat", "water the plants", "turn off the lights", "lock the door",
              "write down the address", "take {poss} umbrella", "buy some {food_mass}", "post the letter"],
    "occasion": ["her birthday", "his birthday", "Christmas", "the wedding", "the holidays", "the journey"],
    "man_word": ["man", "woman", "sailor", "farmer", "fisherman", "shepherd", "lady", "gentleman"],
    "since": ["last summer", "the wedding", "we were at school", "Christmas", "{year}", "the {event}"],
    "fav": ["season is {season}", "colour is {colour}", "animal is the {animal}", "subject is {subject}",
            "city is {city}", "day of the week is {weekday}", "food is {food_mass}", "month is {month}"],
    "danger": ["the road is icy", "the water is deep", "the soup is very hot", "the knife is sharp",
               "the floor is wet", "the paint is still wet", "the ladder is not safe", "the stairs are steep"],
    "sentence": SENTENCES,
})

GRAMMAR = Grammar(RULES)


def english_sentence(rng: random.Random) -> str:
    """One English sentence from the monolingual English grammar.

    Args:
        rng: Random source (the only one used).

    Returns:
        A capitalised, punctuated sentence with every number spelled out.
    """
    raw = GRAMMAR.expand("{sentence}", rng)
    return finish_sentence(fix_articles(raw))
