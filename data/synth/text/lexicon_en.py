"""English lexicon for the monolingual English grammar (:mod:`data.synth.text.english`).

Word lists are stored as whitespace- or ``|``-separated strings to keep the file
compact; multi-word items use ``|`` lists.  Verbs carry all five forms
(``base|3sg|past|-ing|participle``) because English irregulars are too many to
derive safely, plus the grammar symbol of the complements they accept, which is
what keeps generated sentences sensible ("eats an apple", never "eats a ladder").
"""

from __future__ import annotations


def words(text: str) -> tuple:
    """Split a whitespace-separated word list."""
    return tuple(text.split())


def phrases(text: str) -> tuple:
    """Split a ``|``-separated phrase list (newlines are ignored)."""
    return tuple(p.strip() for p in text.replace("\n", " ").split("|") if p.strip())


NAMES_F = words("""Mary Elizabeth Sarah Emily Margaret Alice Helen Rachel Grace Hannah Charlotte Lucy Sophie Olivia
    Emma Anna Laura Julia Kate Jane Ruth Clara Martha Rose Ellen Susan Nancy Diana Fiona Megan Amy Chloe Isabel Naomi
    Holly Victoria Rebecca Catherine Judith Linda Agnes Edith Florence Harriet Lily Maggie Molly Nora Rosie Tessa""")
NAMES_M = words("""John James William Thomas George Henry Edward Charles Robert Richard Peter David Michael Daniel
    Samuel Joseph Arthur Frank Harry Jack Oliver Tom Paul Mark Simon Martin Philip Stephen Andrew Matthew Benjamin
    Patrick Luke Adam Oscar Leo Victor Hugo Walter Albert Alfred Bernard Colin Dennis Ernest Frederick Gordon Howard
    Ian Kevin Neil""")
SURNAMES = words("""Smith Brown Taylor Wilson Johnson Clarke Walker Wright Hughes Green Hall Wood Turner Hill Cooper
    Ward Morris Baker Harris Bennett Carter Porter Fletcher Fisher Mason Palmer Russell Hayes Grant Marsh Shaw Lloyd
    Fox Reed Webb Burton Dixon Foster Lane Hunt Ellis Gibson Holmes Knight Marshall Parker Stevens Watson Young""")
TITLES = words("Doctor Professor Mister Miss Captain Nurse")

RELATIVES = phrases("""brother | sister | father | mother | uncle | aunt | cousin | grandmother | grandfather |
    son | daughter | husband | wife | niece | nephew | friend | neighbour | colleague | boss | best friend |
    little brother | older sister | flatmate""")

CITIES = words("""London Manchester Liverpool Bristol Leeds Glasgow Edinburgh Cardiff Belfast Dublin Oxford Cambridge
    York Bath Brighton Boston Chicago Seattle Denver Toronto Montreal Vancouver Sydney Melbourne Auckland Paris Rome
    Berlin Madrid Lisbon Vienna Prague Athens Cairo Tokyo Kyoto Seoul Delhi Mumbai Singapore Nairobi Lima Oslo
    Stockholm Copenhagen Helsinki Amsterdam Brussels Geneva Zurich Venice Florence Naples Milan Barcelona Seville
    Munich Hamburg Warsaw Budapest Istanbul Dallas Houston Atlanta Phoenix Portland Chester Durham Norwich Exeter
    Plymouth Aberdeen Inverness""")
COUNTRIES = words("""France Spain Italy Germany Scotland Ireland Wales Canada Japan Mexico Brazil Norway Sweden Greece
    Portugal Egypt India Australia Kenya Peru Chile Iceland Austria Switzerland Poland Finland Denmark Morocco
    Argentina Vietnam Thailand Turkey Hungary Croatia""")

OCCUPATIONS = phrases("""teacher | doctor | nurse | engineer | farmer | baker | carpenter | plumber | electrician |
    lawyer | journalist | architect | pilot | painter | musician | writer | librarian | chemist | dentist | mechanic |
    firefighter | police officer | shopkeeper | waiter | chef | gardener | scientist | student | accountant |
    photographer | tailor | fisherman | sailor | judge | banker | clerk | secretary | postman | bus driver |
    designer | programmer | surgeon | vet | pharmacist | translator | actor | singer | builder | receptionist |
    shepherd | blacksmith | butcher | potter | nanny | lecturer | historian | astronomer | bookseller""")
WORKPLACES = phrases("""hospital | school | bank | bakery | library | post office | factory | museum | hotel |
    restaurant | university | newspaper | garage | pharmacy | theatre | farm | shop on the corner | town hall |
    train station | airport | bookshop | law firm | dental clinic | flower shop | fire station | police station""")

PLACES = phrases("""station | museum | library | market | park | hospital | bakery | supermarket | cinema | beach |
    office | airport | hotel | restaurant | castle | harbour | zoo | post office | bank | pharmacy | theatre |
    stadium | swimming pool | bookshop | town hall | gallery | cathedral | farm | garage | petrol station |
    police station | village hall | café | factory | palace | lighthouse | shopping centre | bus stop |
    square | sports centre | church | school | playground | concert hall | train station""")
NATURE_PLACES = phrases("""forest | river | lake | hill | mountain | valley | field | meadow | beach | garden |
    orchard | island | coast | cliff | stream | wood | pond | bay | park | marsh | moor | harbour""")
WATERS = phrases("lake | sea | river | pool | pond | bay")
NATURE_NOUNS = phrases("""sky | sun | moon | wind | rain | snow | sea | river | grass | garden | forest | air |
    mist | frost | evening light | morning sun""")
NATURE_ADJS = words("clear grey bright calm cold warm still wild dark silver golden quiet peaceful fresh heavy gentle")
WEATHER_ADJS = words("cold warm hot windy sunny rainy foggy cloudy freezing wet stormy mild")

ANIMALS = (("dog", "dogs"), ("cat", "cats"), ("horse", "horses"), ("cow", "cows"), ("sheep", "sheep"),
           ("goat", "goats"), ("pig", "pigs"), ("rabbit", "rabbits"), ("fox", "foxes"), ("deer", "deer"),
           ("owl", "owls"), ("crow", "crows"), ("sparrow", "sparrows"), ("robin", "robins"), ("duck", "ducks"),
           ("goose", "geese"), ("swan", "swans"), ("mouse", "mice"), ("squirrel", "squirrels"),
           ("hedgehog", "hedgehogs"), ("badger", "badgers"), ("bear", "bears"), ("wolf", "wolves"),
           ("eagle", "eagles"), ("hawk", "hawks"), ("frog", "frogs"), ("bee", "bees"), ("butterfly", "butterflies"),
           ("lamb", "lambs"), ("donkey", "donkeys"), ("pony", "ponies"), ("parrot", "parrots"),
           ("tortoise", "tortoises"), ("hen", "hens"), ("seagull", "seagulls"), ("heron", "herons"),
           ("otter", "otters"), ("puppy", "puppies"), ("kitten", "kittens"), ("pigeon", "pigeons"))

FOOD_MASS = phrases("""bread | cheese | soup | rice | pasta | fish | chicken | beef | salad | butter | milk | honey |
    jam | cake | chocolate | porridge | stew | bacon | ham | yoghurt | cream | ice cream | cereal | toast | curry |
    pizza | fruit | meat | spinach | garlic | pepper | sugar | flour | lamb | tea | coffee""")
FOOD_COUNT = (("apple", "apples"), ("orange", "oranges"), ("banana", "bananas"), ("egg", "eggs"),
              ("potato", "potatoes"), ("carrot", "carrots"), ("onion", "onions"), ("tomato", "tomatoes"),
              ("lemon", "lemons"), ("pear", "pears"), ("plum", "plums"), ("peach", "peaches"), ("melon", "melons"),
              ("cucumber", "cucumbers"), ("sandwich", "sandwiches"), ("pancake", "pancakes"), ("biscuit", "biscuits"),
              ("sausage", "sausages"), ("muffin", "muffins"), ("scone", "scones"), ("pie", "pies"),
              ("mushroom", "mushrooms"), ("strawberry", "strawberries"), ("cherry", "cherries"),
              ("cabbage", "cabbages"), ("pumpkin", "pumpkins"), ("loaf of bread", "loaves of bread"),
              ("bottle of milk", "bottles of milk"), ("jar of honey", "jars of honey"))
DRINKS = phrases("tea | coffee | water | milk | orange juice | apple juice | lemonade | hot chocolate | wine | cider")

THINGS = phrases("""umbrella | suitcase | key | wallet | purse | letter | parcel | newspaper | magazine | book |
    notebook | pencil | pen | map | ticket | camera | phone | laptop | watch | clock | lamp | mirror | painting |
    photograph | blanket | pillow | basket | bucket | ladder | hammer | rope | candle | bottle | jar | cup | mug |
    plate | bowl | spoon | kettle | teapot | box | bag | backpack | coat | jacket | scarf | hat | sweater | shirt |
    dress | ring | necklace | bracelet | guitar | violin | drum | bicycle | car | boat | kite | ball | toy | puzzle |
    chair | table | sofa | desk | shelf | bed | cupboard | radio | television | heater | brush | towel | torch |
    envelope | postcard | diary | calendar | tent | sleeping bag | fishing rod | telescope | vase | carpet""")
OPENABLES = phrases("""door | window | gate | box | parcel | letter | drawer | cupboard | jar | bottle | curtains |
    suitcase | envelope | front door | garden gate | fridge""")
FURNITURE = phrases("table | chair | sofa | desk | shelf | bed | windowsill | kitchen counter | piano | floor")
CONTAINERS = phrases("box | drawer | cupboard | suitcase | basket | old trunk | envelope | bag | wardrobe | chest")

ADJ_THING = words("""big small old new red blue green yellow white black brown grey pink purple golden silver wooden
    heavy light cheap expensive beautiful strange broken clean dirty tiny huge lovely plain shiny dusty rusty
    antique simple enormous useful fragile colourful""")
ADJ_PERSON = words("""kind clever brave shy proud careful patient polite honest cheerful quiet friendly gentle
    generous funny serious young old famous strict lazy curious busy wise nervous""")
ADJ_FEELING = words("""tired hungry thirsty angry happy sad nervous worried excited surprised bored sleepy sick
    lonely cold calm pleased relieved upset""")
ADJ_PLACE = words("""busy quiet crowded peaceful beautiful old famous small noisy empty modern lovely cold warm
    dark bright clean dirty huge tiny""")
ADJ_FOOD = words("fresh sweet delicious spicy salty warm cold hot tasty bitter sour plain")
COLOURS = words("red blue green yellow white black brown grey pink purple orange")

TOPICS = phrases("""the history of {city} | birds | the stars | ancient Rome | old trains | the sea | music |
    gardening | cooking | the weather | mountains | insects | the moon | famous painters | the old castle |
    life on the farm | sailing | the river | wild flowers | the war | chess | space travel | football |
    the Roman army | volcanoes | whales | old maps""")
SUBJECTS = phrases("""history | mathematics | biology | chemistry | music | law | medicine | physics | geography |
    literature | art | economics | French | Spanish | German | Latin | philosophy | engineering""")
GAMES = phrases("""football | tennis | chess | cards | golf | cricket | basketball | rugby | hockey | the piano |
    the guitar | the violin | the drums | hide and seek | a board game | volleyball | badminton""")
EVENTS = phrases("""party | wedding | picnic | concert | meeting | festival | birthday party | school trip |
    dinner party | village fair | football match | barbecue | charity dinner""")
MEALS = words("breakfast lunch dinner supper")
SEASONS = words("spring summer autumn winter")
WEEKDAYS = words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = words("January February March April May June July August September October November December")
TRANSPORT = phrases("by train | by bus | by car | by plane | by bike | on foot | by boat | by coach | by taxi")

TIME_PAST = phrases("""yesterday | last night | this morning | last week | last month | last year | last summer |
    last winter | a few days ago | two weeks ago | the day before yesterday | on Monday | on Friday evening |
    at the weekend | in the spring | long ago | earlier today | after lunch | last Christmas | during the holidays""")
TIME_FUT = phrases("""tomorrow | tonight | next week | next month | next year | next summer | on Saturday |
    tomorrow morning | the day after tomorrow | this weekend | after dinner | in the spring | soon |
    in a few days | later this evening | before the end of the month""")
TIME_HAB = phrases("""every day | every morning | every evening | on Sundays | at the weekend | twice a week |
    once a month | in the evenings | after work | before breakfast | every summer | on Saturday mornings |
    most days | in the afternoon | every winter | on weekdays""")

# base|3sg|past|ing|participle : complement symbol ("" = none needed)
VERBS = """
eat|eats|ate|eating|eaten : food_obj
cook|cooks|cooked|cooking|cooked : dish_obj
buy|buys|bought|buying|bought : buy_obj
sell|sells|sold|selling|sold : sell_obj
carry|carries|carried|carrying|carried : carry_obj
find|finds|found|finding|found : find_obj
lose|loses|lost|losing|lost : lose_obj
open|opens|opened|opening|opened : open_obj
close|closes|closed|closing|closed : open_obj
clean|cleans|cleaned|cleaning|cleaned : clean_obj
paint|paints|painted|painting|painted : paint_obj
repair|repairs|repaired|repairing|repaired : fix_obj
fix|fixes|fixed|fixing|fixed : fix_obj
read|reads|read|reading|read : read_obj
write|writes|wrote|writing|written : write_obj
wash|washes|washed|washing|washed : wash_obj
borrow|borrows|borrowed|borrowing|borrowed : borrow_obj
bring|brings|brought|bringing|brought : bring_obj
visit|visits|visited|visiting|visited : visit_obj
call|calls|called|calling|called : call_obj
meet|meets|met|meeting|met : meet_obj
help|helps|helped|helping|helped : help_obj
watch|watches|watched|watching|watched : show_obj
play|plays|played|playing|played : game_obj
drink|drinks|drank|drinking|drunk : drink_obj
build|builds|built|building|built : build_obj
draw|draws|drew|drawing|drawn : draw_obj
plant|plants|planted|planting|planted : plant_obj
pick|picks|picked|picking|picked : fruit_obj
feed|feeds|fed|feeding|fed : feed_obj
catch|catches|caught|catching|caught : catch_obj
walk|walks|walked|walking|walked : walk_comp
run|runs|ran|running|run : run_comp
swim|swims|swam|swimming|swum : swim_comp
sleep|sleeps|slept|sleeping|slept : sleep_comp
work|works|worked|working|worked : work_comp
sing|sings|sang|singing|sung : sing_comp
dance|dances|danced|dancing|danced : dance_comp
study|studies|studied|studying|studied : study_comp
teach|teaches|taught|teaching|taught : teach_comp
learn|learns|learned|learning|learned : learn_comp
rent|rents|rented|renting|rented : rent_obj
order|orders|ordered|ordering|ordered : order_obj
pack|packs|packed|packing|packed : pack_obj
check|checks|checked|checking|checked : check_obj
climb|climbs|climbed|climbing|climbed : climb_obj
cross|crosses|crossed|crossing|crossed : cross_obj
leave|leaves|left|leaving|left : leave_obj
bake|bakes|baked|baking|baked : bake_obj
travel|travels|travelled|travelling|travelled : travel_comp
drive|drives|drove|driving|driven : drive_comp
ride|rides|rode|riding|ridden : ride_obj
listen|listens|listened|listening|listened : listen_comp
look|looks|looked|looking|looked : look_comp
talk|talks|talked|talking|talked : talk_comp
think|thinks|thought|thinking|thought : think_comp
wait|waits|waited|waiting|waited : wait_comp
invite|invites|invited|inviting|invited : invite_obj
tell|tells|told|telling|told : tell_obj
show|shows|showed|showing|shown : show_to_obj
ask|asks|asked|asking|asked : ask_obj
answer|answers|answered|answering|answered : answer_obj
forget|forgets|forgot|forgetting|forgotten : forget_obj
remember|remembers|remembered|remembering|remembered : remember_obj
enjoy|enjoys|enjoyed|enjoying|enjoyed : enjoy_obj
hear|hears|heard|hearing|heard : hear_obj
see|sees|saw|seeing|seen : see_obj
cut|cuts|cut|cutting|cut : cut_obj
fly|flies|flew|flying|flown : fly_comp
send|sends|sent|sending|sent : send_obj
prepare|prepares|prepared|preparing|prepared : dish_obj
collect|collects|collected|collecting|collected : collect_obj
"""
