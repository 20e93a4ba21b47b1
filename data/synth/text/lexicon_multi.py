"""Aligned en/de/fr/es/it lexicon for the bilingual template grammar.

Every line is one entry, segments in the order ``en ; de ; fr ; es ; it`` (see
:func:`data.synth.text.morph.parse_entry`): ``g:singular|plural`` with ``g`` the
grammatical gender.  A leading ``[m kin]`` block gives natural sex and tags.
Flags after ``#``: ``h`` French h aspiré, ``wk=n`` German weak masculine
(``den Nachbarn``), ``dir=/loc=`` German place prepositions, ``bare=`` Italian
article-less place phrases (``in biblioteca``), ``in``/``on`` English locative
preposition, ``bare`` English article-less place (``to school``).

Only entries whose translations are genuinely equivalent are listed; anything
with an idiomatic mismatch (countries with articles, dative-experiencer verbs)
is deliberately left out rather than generated wrongly.
"""

# ruff: noqa: E501  (one aligned entry per line reads better than wrapped entries)

from __future__ import annotations

from .morph import Entry, parse_entry


def _block(text: str) -> tuple:
    """Parse a multi-line block of lexicon lines (blank lines and ``//`` comments skipped)."""
    entries = []
    for raw in text.strip().splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        sex, tags = "", ()
        if line.startswith("["):
            head, line = line[1:].split("]", 1)
            words = head.split()
            if words and words[0] in ("m", "f"):
                sex, words = words[0], words[1:]
            tags = tuple(words)
        entries.append(parse_entry(line.strip(), sex=sex, tags=tags))
    return tuple(entries)


def by_tag(entries: tuple, tag: str) -> tuple:
    """Entries carrying ``tag`` (order preserved, so sampling stays deterministic)."""
    return tuple(e for e in entries if tag in e.tags)


# First names spelled identically in all five languages, with natural sex.
NAMES = (
    ("Anna", "f"), ("Maria", "f"), ("Laura", "f"), ("Julia", "f"), ("Lisa", "f"), ("Eva", "f"),
    ("Sara", "f"), ("Nina", "f"), ("Clara", "f"), ("Emma", "f"), ("Elena", "f"), ("Olivia", "f"),
    ("Paula", "f"), ("Marta", "f"), ("Peter", "m"), ("Thomas", "m"), ("Martin", "m"),
    ("Daniel", "m"), ("David", "m"), ("Paul", "m"), ("Leo", "m"), ("Felix", "m"), ("Oscar", "m"),
    ("Victor", "m"), ("Simon", "m"), ("Hugo", "m"), ("Max", "m"), ("Robert", "m"), ("Jonas", "m"),
)

PERSONS = _block("""
[m kin] brother|brothers ; m:Bruder|Brüder ; m:frère|frères ; m:hermano|hermanos ; m:fratello|fratelli
[f kin] sister|sisters ; f:Schwester|Schwestern ; f:sœur|sœurs ; f:hermana|hermanas ; f:sorella|sorelle
[m kin] father|fathers ; m:Vater|Väter ; m:père|pères ; m:padre|padres ; m:padre|padri
[f kin] mother|mothers ; f:Mutter|Mütter ; f:mère|mères ; f:madre|madres ; f:madre|madri
[m kin] grandfather|grandfathers ; m:Großvater|Großväter ; m:grand-père|grands-pères ; m:abuelo|abuelos ; m:nonno|nonni
[f kin] grandmother|grandmothers ; f:Großmutter|Großmütter ; f:grand-mère|grands-mères ; f:abuela|abuelas ; f:nonna|nonne
[m kin] uncle|uncles ; m:Onkel|Onkel ; m:oncle|oncles ; m:tío|tíos ; m:zio|zii
[f kin] aunt|aunts ; f:Tante|Tanten ; f:tante|tantes ; f:tía|tías ; f:zia|zie
[m kin] son|sons ; m:Sohn|Söhne ; m:fils|fils ; m:hijo|hijos ; m:figlio|figli
[f kin] daughter|daughters ; f:Tochter|Töchter ; f:fille|filles ; f:hija|hijas ; f:figlia|figlie
[m kin] cousin|cousins ; m:Cousin|Cousins ; m:cousin|cousins ; m:primo|primos ; m:cugino|cugini
[f kin] cousin|cousins ; f:Cousine|Cousinen ; f:cousine|cousines ; f:prima|primas ; f:cugina|cugine
[m kin spouse] husband|husbands ; m:Mann|Männer ; m:mari|maris ; m:marido|maridos ; m:marito|mariti
[f kin spouse] wife|wives ; f:Frau|Frauen ; f:femme|femmes ; f:mujer|mujeres ; f:moglie|mogli
[m friend] friend|friends ; m:Freund|Freunde ; m:ami|amis ; m:amigo|amigos ; m:amico|amici
[f friend] friend|friends ; f:Freundin|Freundinnen ; f:amie|amies ; f:amiga|amigas ; f:amica|amiche
[m friend] neighbour|neighbours ; m:Nachbar|Nachbarn #wk=n ; m:voisin|voisins ; m:vecino|vecinos ; m:vicino|vicini
[f friend] neighbour|neighbours ; f:Nachbarin|Nachbarinnen ; f:voisine|voisines ; f:vecina|vecinas ; f:vicina|vicine
[m friend] colleague|colleagues ; m:Kollege|Kollegen #wk=n ; m:collègue|collègues ; m:compañero|compañeros ; m:collega|colleghi
[f friend] colleague|colleagues ; f:Kollegin|Kolleginnen ; f:collègue|collègues ; f:compañera|compañeras ; f:collega|colleghe
[m role] teacher|teachers ; m:Lehrer|Lehrer ; m:professeur|professeurs ; m:profesor|profesores ; m:insegnante|insegnanti
[m role] doctor|doctors ; m:Arzt|Ärzte ; m:médecin|médecins ; m:médico|médicos ; m:medico|medici
[m role] waiter|waiters ; m:Kellner|Kellner ; m:serveur|serveurs ; m:camarero|camareros ; m:cameriere|camerieri
[m role] bus driver|bus drivers ; m:Busfahrer|Busfahrer ; m:chauffeur de bus|chauffeurs de bus ; m:conductor del autobús|conductores del autobús ; m:autista|autisti
[f role] nurse|nurses ; f:Krankenschwester|Krankenschwestern ; f:infirmière|infirmières ; f:enfermera|enfermeras ; f:infermiera|infermiere
[m role] postman|postmen ; m:Briefträger|Briefträger ; m:facteur|facteurs ; m:cartero|carteros ; m:postino|postini
[m role] boy|boys ; m:Junge|Jungen #wk=n ; m:garçon|garçons ; m:chico|chicos ; m:ragazzo|ragazzi
""")

# Segments without a gender prefix: the city name in each language; [port] = reachable by ferry.
CITIES = _block("""
[port] London ; London ; Londres ; Londres ; Londra
Paris ; Paris ; Paris ; París ; Parigi
Rome ; Rom ; Rome ; Roma ; Roma
Berlin ; Berlin ; Berlin ; Berlín ; Berlino
Munich ; München ; Munich ; Múnich ; Monaco di Baviera
Vienna ; Wien ; Vienne ; Viena ; Vienna
[port] Venice ; Venedig ; Venise ; Venecia ; Venezia
Florence ; Florenz ; Florence ; Florencia ; Firenze
Milan ; Mailand ; Milan ; Milán ; Milano
Madrid ; Madrid ; Madrid ; Madrid ; Madrid
[port] Barcelona ; Barcelona ; Barcelone ; Barcelona ; Barcellona
[port] Lisbon ; Lissabon ; Lisbonne ; Lisboa ; Lisbona
Brussels ; Brüssel ; Bruxelles ; Bruselas ; Bruxelles
Geneva ; Genf ; Genève ; Ginebra ; Ginevra
Zurich ; Zürich ; Zurich ; Zúrich ; Zurigo
Prague ; Prag ; Prague ; Praga ; Praga
Warsaw ; Warschau ; Varsovie ; Varsovia ; Varsavia
[port] Athens ; Athen ; Athènes ; Atenas ; Atene
Cologne ; Köln ; Cologne ; Colonia ; Colonia
[port] Hamburg ; Hamburg ; Hambourg ; Hamburgo ; Amburgo
[port] Naples ; Neapel ; Naples ; Nápoles ; Napoli
[port] Seville ; Sevilla ; Séville ; Sevilla ; Siviglia
[port] Amsterdam ; Amsterdam ; Amsterdam ; Ámsterdam ; Amsterdam
[port] Stockholm ; Stockholm ; Stockholm ; Estocolmo ; Stoccolma
[port] Copenhagen ; Kopenhagen ; Copenhague ; Copenhague ; Copenaghen
[port] Edinburgh ; Edinburgh ; Édimbourg ; Edimburgo ; Edimburgo
[port] Dublin ; Dublin ; Dublin ; Dublín ; Dublino
Budapest ; Budapest ; Budapest ; Budapest ; Budapest
[port] Marseille ; Marseille ; Marseille ; Marsella ; Marsiglia
Lyon ; Lyon ; Lyon ; Lyon ; Lione
Turin ; Turin ; Turin ; Turín ; Torino
Salzburg ; Salzburg ; Salzbourg ; Salzburgo ; Salisburgo
Frankfurt ; Frankfurt ; Francfort ; Fráncfort ; Francoforte
Bologna ; Bologna ; Bologne ; Bolonia ; Bologna
[port] Oslo ; Oslo ; Oslo ; Oslo ; Oslo
Krakow ; Krakau ; Cracovie ; Cracovia ; Cracovia
[port] Genoa ; Genua ; Gênes ; Génova ; Genova
Strasbourg ; Straßburg ; Strasbourg ; Estrasburgo ; Strasburgo
Dresden ; Dresden ; Dresde ; Dresde ; Dresda
[port] Porto ; Porto ; Porto ; Oporto ; Porto
""")

# Venues.  German: dir= preposition for "to the X" (zu + dative, else + accusative),
# loc= preposition for "at the X" (+ dative).  Italian bare= uses no article.
# Tags: open = has opening hours, count = natural in "there are N X in <city>".
PLACES = _block("""
[count] station|stations #at ; m:Bahnhof|Bahnhöfe #dir=zu #loc=an ; f:gare|gares ; f:estación|estaciones ; f:stazione|stazioni
[open count] museum|museums #at ; n:Museum|Museen #dir=in #loc=in ; m:musée|musées ; m:museo|museos ; m:museo|musei
[open count] library|libraries #at ; f:Bibliothek|Bibliotheken #dir=in #loc=in ; f:bibliothèque|bibliothèques ; f:biblioteca|bibliotecas ; f:biblioteca|biblioteche #bare=in
[open count] market|markets #at ; m:Markt|Märkte #dir=auf #loc=auf ; m:marché|marchés ; m:mercado|mercados ; m:mercato|mercati
[count] park|parks #in ; m:Park|Parks #dir=in #loc=in ; m:parc|parcs ; m:parque|parques ; m:parco|parchi
[count] hospital|hospitals #at ; n:Krankenhaus|Krankenhäuser #dir=in #loc=in ; m:hôpital|hôpitaux ; m:hospital|hospitales ; m:ospedale|ospedali
[open count] bakery|bakeries #at ; f:Bäckerei|Bäckereien #dir=zu #loc=in ; f:boulangerie|boulangeries ; f:panadería|panaderías ; f:panetteria|panetterie #bare=in
[open count] supermarket|supermarkets #at ; m:Supermarkt|Supermärkte #dir=in #loc=in ; m:supermarché|supermarchés ; m:supermercado|supermercados ; m:supermercato|supermercati
[count] cinema|cinemas #at ; n:Kino|Kinos #dir=in #loc=in ; m:cinéma|cinémas ; m:cine|cines ; m:cinema|cinema
[none] beach|beaches #on ; m:Strand|Strände #dir=an #loc=an ; f:plage|plages ; f:playa|playas ; f:spiaggia|spiagge #bare=in
[count] school|schools #bare ; f:Schule|Schulen #dir=zu #loc=in ; f:école|écoles ; f:escuela|escuelas ; f:scuola|scuole #bare=a
[none] office|offices #at ; n:Büro|Büros #dir=in #loc=in ; m:bureau|bureaux ; f:oficina|oficinas ; m:ufficio|uffici #bare=in
[count] airport|airports #at ; m:Flughafen|Flughäfen #dir=zu #loc=an ; m:aéroport|aéroports ; m:aeropuerto|aeropuertos ; m:aeroporto|aeroporti
[count] hotel|hotels #at ; n:Hotel|Hotels #dir=in #loc=in ; m:hôtel|hôtels ; m:hotel|hoteles ; m:albergo|alberghi #bare=in
[open count] restaurant|restaurants #at ; n:Restaurant|Restaurants #dir=in #loc=in ; m:restaurant|restaurants ; m:restaurante|restaurantes ; m:ristorante|ristoranti
[count] church|churches #bare ; f:Kirche|Kirchen #dir=in #loc=in ; f:église|églises ; f:iglesia|iglesias ; f:chiesa|chiese #bare=in
[open count] castle|castles #at ; n:Schloss|Schlösser #dir=zu #loc=in ; m:château|châteaux ; m:castillo|castillos ; m:castello|castelli
[none] harbour|harbours #at ; m:Hafen|Häfen #dir=zu #loc=in ; m:port|ports ; m:puerto|puertos ; m:porto|porti
[open] zoo|zoos #at ; m:Zoo|Zoos #dir=in #loc=in ; m:zoo|zoos ; m:zoo|zoos ; m:zoo|zoo
[open] post office|post offices #at ; f:Post|Postämter #dir=zu #loc=auf ; f:poste|postes ; f:oficina de correos|oficinas de correos ; m:ufficio postale|uffici postali
[open count] bank|banks #at ; f:Bank|Banken #dir=zu #loc=in ; f:banque|banques ; m:banco|bancos ; f:banca|banche #bare=in
[open count] pharmacy|pharmacies #at ; f:Apotheke|Apotheken #dir=zu #loc=in ; f:pharmacie|pharmacies ; f:farmacia|farmacias ; f:farmacia|farmacie #bare=in
[count] theatre|theatres #at ; n:Theater|Theater #dir=in #loc=in ; m:théâtre|théâtres ; m:teatro|teatros ; m:teatro|teatri #bare=a
[count] stadium|stadiums #at ; n:Stadion|Stadien #dir=in #loc=in ; m:stade|stades ; m:estadio|estadios ; m:stadio|stadi
[count] university|universities #at ; f:Universität|Universitäten #dir=zu #loc=an ; f:université|universités ; f:universidad|universidades ; f:università|università
[open count] swimming pool|swimming pools #at ; n:Schwimmbad|Schwimmbäder #dir=in #loc=in ; f:piscine|piscines ; f:piscina|piscinas ; f:piscina|piscine #bare=in
[open count] bookshop|bookshops #at ; f:Buchhandlung|Buchhandlungen #dir=in #loc=in ; f:librairie|librairies ; f:librería|librerías ; f:libreria|librerie #bare=in
[count nogo] bridge|bridges #on ; f:Brücke|Brücken #dir=zu #loc=auf ; m:pont|ponts ; m:puente|puentes ; m:ponte|ponti
""")

# Portable things.  Tags: small = carried and easily lost, wear = clothing,
# open = can be opened/closed, gift = a sensible present.
OBJECTS = _block("""
[small gift] umbrella|umbrellas ; m:Regenschirm|Regenschirme ; m:parapluie|parapluies ; m:paraguas|paraguas ; m:ombrello|ombrelli
[small open gift] backpack|backpacks ; m:Rucksack|Rucksäcke ; m:sac à dos|sacs à dos ; f:mochila|mochilas ; m:zaino|zaini
[small open gift] bag|bags ; f:Tasche|Taschen ; m:sac|sacs ; m:bolso|bolsos ; f:borsa|borse
[small] key|keys ; m:Schlüssel|Schlüssel ; f:clé|clés ; f:llave|llaves ; f:chiave|chiavi
[small gift] book|books ; n:Buch|Bücher ; m:livre|livres ; m:libro|libros ; m:libro|libri
[small] newspaper|newspapers ; f:Zeitung|Zeitungen ; m:journal|journaux ; m:periódico|periódicos ; m:giornale|giornali
[gift] bicycle|bicycles ; n:Fahrrad|Fahrräder ; m:vélo|vélos ; f:bicicleta|bicicletas ; f:bicicletta|biciclette
[none] car|cars ; n:Auto|Autos ; f:voiture|voitures ; m:coche|coches ; f:macchina|macchine
[small wear gift] jacket|jackets ; f:Jacke|Jacken ; f:veste|vestes ; f:chaqueta|chaquetas ; f:giacca|giacche
[wear gift] coat|coats ; m:Mantel|Mäntel ; m:manteau|manteaux ; m:abrigo|abrigos ; m:cappotto|cappotti
[small wear gift] hat|hats ; m:Hut|Hüte ; m:chapeau|chapeaux ; m:sombrero|sombreros ; m:cappello|cappelli
[small gift] watch|watches ; f:Uhr|Uhren ; f:montre|montres ; m:reloj|relojes ; m:orologio|orologi
[small gift] phone|phones ; n:Handy|Handys ; m:téléphone|téléphones ; m:teléfono|teléfonos ; m:telefono|telefoni
[small gift] camera|cameras ; f:Kamera|Kameras ; m:appareil photo|appareils photo ; f:cámara|cámaras ; f:macchina fotografica|macchine fotografiche
[small] letter|letters ; m:Brief|Briefe ; f:lettre|lettres ; f:carta|cartas ; f:lettera|lettere
[small] map|maps ; f:Karte|Karten ; f:carte|cartes ; m:mapa|mapas ; f:cartina|cartine
[small] ticket|tickets ; f:Fahrkarte|Fahrkarten ; m:billet|billets ; m:billete|billetes ; m:biglietto|biglietti
[small wear gift] scarf|scarves ; m:Schal|Schals ; f:écharpe|écharpes ; f:bufanda|bufandas ; f:sciarpa|sciarpe
[open gift] suitcase|suitcases ; m:Koffer|Koffer ; f:valise|valises ; f:maleta|maletas ; f:valigia|valigie
[small gift] wallet|wallets ; f:Geldbörse|Geldbörsen ; m:portefeuille|portefeuilles ; f:cartera|carteras ; m:portafoglio|portafogli
[small gift] laptop|laptops ; m:Laptop|Laptops ; m:ordinateur portable|ordinateurs portables ; m:portátil|portátiles ; m:portatile|portatili
[gift] guitar|guitars ; f:Gitarre|Gitarren ; f:guitare|guitares ; f:guitarra|guitarras ; f:chitarra|chitarre
[gift] lamp|lamps ; f:Lampe|Lampen ; f:lampe|lampes ; f:lámpara|lámparas ; f:lampada|lampade
[wear gift] dress|dresses ; n:Kleid|Kleider ; f:robe|robes ; m:vestido|vestidos ; m:vestito|vestiti
[wear gift] shirt|shirts ; n:Hemd|Hemden ; f:chemise|chemises ; f:camisa|camisas ; f:camicia|camicie
[small gift] pen|pens ; m:Stift|Stifte ; m:stylo|stylos ; m:bolígrafo|bolígrafos ; f:penna|penne
[small] notebook|notebooks ; n:Heft|Hefte ; m:cahier|cahiers ; m:cuaderno|cuadernos ; m:quaderno|quaderni
[gift] mirror|mirrors ; m:Spiegel|Spiegel ; m:miroir|miroirs ; m:espejo|espejos ; m:specchio|specchi
[gift] picture|pictures ; n:Bild|Bilder ; m:tableau|tableaux ; m:cuadro|cuadros ; m:quadro|quadri
[gift] toy|toys ; n:Spielzeug|Spielzeuge ; m:jouet|jouets ; m:juguete|juguetes ; m:giocattolo|giocattoli
[gift] tent|tents ; n:Zelt|Zelte ; f:tente|tentes ; f:tienda de campaña|tiendas de campaña ; f:tenda|tende
[small gift] ball|balls ; m:Ball|Bälle ; m:ballon|ballons ; m:balón|balones ; m:pallone|palloni
[open] window|windows ; n:Fenster|Fenster ; f:fenêtre|fenêtres ; f:ventana|ventanas ; f:finestra|finestre
[open] door|doors ; f:Tür|Türen ; f:porte|portes ; f:puerta|puertas ; f:porta|porte
[open] box|boxes ; f:Kiste|Kisten ; f:boîte|boîtes ; f:caja|cajas ; f:scatola|scatole
""")

# Furniture and containers for "the key is on the table".  Tag = relation.
FURNITURE = _block("""
[on under] table|tables ; m:Tisch|Tische ; f:table|tables ; f:mesa|mesas ; m:tavolo|tavoli
[on under] chair|chairs ; m:Stuhl|Stühle ; f:chaise|chaises ; f:silla|sillas ; f:sedia|sedie
[on under] bed|beds ; n:Bett|Betten ; m:lit|lits ; f:cama|camas ; m:letto|letti
[on under] sofa|sofas ; n:Sofa|Sofas ; m:canapé|canapés ; m:sofá|sofás ; m:divano|divani
[on under] desk|desks ; m:Schreibtisch|Schreibtische ; m:bureau|bureaux ; m:escritorio|escritorios ; f:scrivania|scrivanie
[on] shelf|shelves ; n:Regal|Regale ; f:étagère|étagères ; f:estantería|estanterías ; m:scaffale|scaffali
[in] drawer|drawers ; f:Schublade|Schubladen ; m:tiroir|tiroirs ; m:cajón|cajones ; m:cassetto|cassetti
[in] box|boxes ; f:Kiste|Kisten ; f:boîte|boîtes ; f:caja|cajas ; f:scatola|scatole
[in] bag|bags ; f:Tasche|Taschen ; m:sac|sacs ; m:bolso|bolsos ; f:borsa|borse
[in] car|cars ; n:Auto|Autos ; f:voiture|voitures ; m:coche|coches ; f:macchina|macchine
[in] kitchen|kitchens ; f:Küche|Küchen ; f:cuisine|cuisines ; f:cocina|cocinas ; f:cucina|cucine
""")

# Mass food and drink (used bare or with the French/Italian partitive).
MASS_FOOD = _block("""
[food] bread ; n:Brot ; m:pain ; m:pan ; m:pane
[food] cheese ; m:Käse ; m:fromage ; m:queso ; m:formaggio
[food] soup ; f:Suppe ; f:soupe ; f:sopa ; f:zuppa
[food] rice ; m:Reis ; m:riz ; m:arroz ; m:riso
[food] fish ; m:Fisch ; m:poisson ; m:pescado ; m:pesce
[food] meat ; n:Fleisch ; f:viande ; f:carne ; f:carne
[food] salad ; m:Salat ; f:salade ; f:ensalada ; f:insalata
[food] yoghurt ; m:Joghurt ; m:yaourt #h ; m:yogur ; m:yogurt
[food] chocolate ; f:Schokolade ; m:chocolat ; m:chocolate ; m:cioccolato
[food] honey ; m:Honig ; m:miel ; f:miel ; m:miele
[food] butter ; f:Butter ; m:beurre ; f:mantequilla ; m:burro
[food] chicken ; n:Hähnchen ; m:poulet ; m:pollo ; m:pollo
[food] ham ; m:Schinken ; m:jambon #h ; m:jamón ; m:prosciutto
[food] cake ; m:Kuchen ; m:gâteau ; f:tarta ; f:torta
[drink] coffee ; m:Kaffee ; m:café ; m:café ; m:caffè
[drink] tea ; m:Tee ; m:thé ; m:té ; m:tè
[drink] milk ; f:Milch ; m:lait ; f:leche ; m:latte
[drink] water ; n:Wasser ; f:eau ; f:agua ; f:acqua
[drink] orange juice ; m:Orangensaft ; m:jus d'orange ; m:zumo de naranja ; m:succo d'arancia
[drink] wine ; m:Wein ; m:vin ; m:vino ; m:vino
[drink] lemonade ; f:Limonade ; f:limonade ; f:limonada ; f:limonata
""")

# Countable food, usable with "a"/"an" ("I would like a sandwich").
COUNT_FOOD = _block("""
[order eat] sandwich|sandwiches ; n:Sandwich|Sandwiches ; m:sandwich|sandwichs ; m:bocadillo|bocadillos ; m:panino|panini
[order eat] pizza|pizzas ; f:Pizza|Pizzas ; f:pizza|pizzas ; f:pizza|pizzas ; f:pizza|pizze
[order eat] croissant|croissants ; n:Croissant|Croissants ; m:croissant|croissants ; m:cruasán|cruasanes ; m:cornetto|cornetti
[order eat] ice cream|ice creams ; n:Eis|Eis ; f:glace|glaces ; m:helado|helados ; m:gelato|gelati
[eat] apple|apples ; m:Apfel|Äpfel ; f:pomme|pommes ; f:manzana|manzanas ; f:mela|mele
[eat] orange|oranges ; f:Orange|Orangen ; f:orange|oranges ; f:naranja|naranjas ; f:arancia|arance
[eat] banana|bananas ; f:Banane|Bananen ; f:banane|bananes ; m:plátano|plátanos ; f:banana|banane
[order] coffee|coffees ; m:Kaffee|Kaffees ; m:café|cafés ; m:café|cafés ; m:caffè|caffè
[order] tea|teas ; m:Tee|Tees ; m:thé|thés ; m:té|tés ; m:tè|tè
[order] beer|beers ; n:Bier|Biere ; f:bière|bières ; f:cerveza|cervezas ; f:birra|birre
[order] orange juice|orange juices ; m:Orangensaft|Orangensäfte ; m:jus d'orange|jus d'orange ; m:zumo de naranja|zumos de naranja ; m:succo d'arancia|succhi d'arancia
[order eat] soup|soups ; f:Suppe|Suppen ; f:soupe|soupes ; f:sopa|sopas ; f:zuppa|zuppe
[order eat] salad|salads ; m:Salat|Salate ; f:salade|salades ; f:ensalada|ensaladas ; f:insalata|insalate
""")

# Countable things people own ("Anna has three cats").
COUNTABLES = _block("""
[pet] cat|cats ; f:Katze|Katzen ; m:chat|chats ; m:gato|gatos ; m:gatto|gatti
[pet] dog|dogs ; m:Hund|Hunde ; m:chien|chiens ; m:perro|perros ; m:cane|cani
[pet] rabbit|rabbits ; n:Kaninchen|Kaninchen ; m:lapin|lapins ; m:conejo|conejos ; m:coniglio|conigli
[farm] horse|horses ; n:Pferd|Pferde ; m:cheval|chevaux ; m:caballo|caballos ; m:cavallo|cavalli
[pet] bird|birds ; m:Vogel|Vögel ; m:oiseau|oiseaux ; m:pájaro|pájaros ; m:uccello|uccelli
[farm] hen|hens ; n:Huhn|Hühner ; f:poule|poules ; f:gallina|gallinas ; f:gallina|galline
[farm] cow|cows ; f:Kuh|Kühe ; f:vache|vaches ; f:vaca|vacas ; f:mucca|mucche
[farm] sheep|sheep ; n:Schaf|Schafe ; m:mouton|moutons ; f:oveja|ovejas ; f:pecora|pecore
[farm] goat|goats ; f:Ziege|Ziegen ; f:chèvre|chèvres ; f:cabra|cabras ; f:capra|capre
[kin] brother|brothers ; m:Bruder|Brüder ; m:frère|frères ; m:hermano|hermanos ; m:fratello|fratelli
[kin] sister|sisters ; f:Schwester|Schwestern ; f:sœur|sœurs ; f:hermana|hermanas ; f:sorella|sorelle
[kin] child|children ; n:Kind|Kinder ; m:enfant|enfants ; m:hijo|hijos ; m:figlio|figli
[kin] grandchild|grandchildren ; n:Enkelkind|Enkelkinder ; m:petit-enfant|petits-enfants ; m:nieto|nietos ; m:nipote|nipoti
[thing] bicycle|bicycles ; n:Fahrrad|Fahrräder ; m:vélo|vélos ; f:bicicleta|bicicletas ; f:bicicletta|biciclette
[thing] car|cars ; n:Auto|Autos ; f:voiture|voitures ; m:coche|coches ; f:macchina|macchine
[thing] guitar|guitars ; f:Gitarre|Gitarren ; f:guitare|guitares ; f:guitarra|guitarras ; f:chitarra|chitarre
""")

# Adjectives: de predicative|attributive stem; fr/es/it masculine|feminine.
# Tags: attr = safe after the noun in fr/es/it with this meaning; estar = Spanish
# copula is "estar" (a state) rather than "ser".
THING_ADJS = _block("""
[attr] red ; rot|rot ; rouge|rouge ; rojo|roja ; rosso|rossa
[attr] black ; schwarz|schwarz ; noir|noire ; negro|negra ; nero|nera
[attr] white ; weiß|weiß ; blanc|blanche ; blanco|blanca ; bianco|bianca
[attr] green ; grün|grün ; vert|verte ; verde|verde ; verde|verde
[attr] blue ; blau|blau ; bleu|bleue ; azul|azul ; blu|blu
[attr] yellow ; gelb|gelb ; jaune|jaune ; amarillo|amarilla ; giallo|gialla
[attr] grey ; grau|grau ; gris|grise ; gris|gris ; grigio|grigia
[attr] brown ; braun|braun ; marron|marron ; marrón|marrón ; marrone|marrone
[attr] expensive ; teuer|teur ; cher|chère ; caro|cara ; costoso|costosa
[attr] heavy ; schwer|schwer ; lourd|lourde ; pesado|pesada ; pesante|pesante
[attr] light ; leicht|leicht ; léger|légère ; ligero|ligera ; leggero|leggera
[attr] modern ; modern|modern ; moderne|moderne ; moderno|moderna ; moderno|moderna
[attr] comfortable ; bequem|bequem ; confortable|confortable ; cómodo|cómoda ; comodo|comoda
[attr] elegant ; elegant|elegant ; élégant|élégante ; elegante|elegante ; elegante|elegante
[attr estar] broken ; kaputt|kaputt ; cassé|cassée ; roto|rota ; rotto|rotta
[attr estar] dirty ; schmutzig|schmutzig ; sale|sale ; sucio|sucia ; sporco|sporca
[attr estar] clean ; sauber|sauber ; propre|propre ; limpio|limpia ; pulito|pulita
[pred] big ; groß|groß ; grand|grande ; grande|grande ; grande|grande
[pred] small ; klein|klein ; petit|petite ; pequeño|pequeña ; piccolo|piccola
[pred] old ; alt|alt ; vieux|vieille ; viejo|vieja ; vecchio|vecchia
[pred] cheap ; billig|billig ; bon marché|bon marché ; barato|barata ; economico|economica
[pred] new ; neu|neu ; neuf|neuve ; nuevo|nueva ; nuovo|nuova
""")

# Predicative states of people; [m|f] groups agree with the subject's sex.
STATE_ADJS = (
    ("tired", "müde", "fatigué[|e]", "cansad[o|a]", "stanc[o|a]"),
    ("happy", "glücklich", "heureu[x|se]", "content[o|a]", "content[o|a]"),
    ("sad", "traurig", "triste", "triste", "triste"),
    ("busy", "beschäftigt", "occupé[|e]", "ocupad[o|a]", "impegnat[o|a]"),
    ("ill", "krank", "malade", "enferm[o|a]", "malat[o|a]"),
    ("ready", "bereit", "prêt[|e]", "list[o|a]", "pront[o|a]"),
    ("nervous", "nervös", "nerveu[x|se]", "nervios[o|a]", "nervos[o|a]"),
    ("worried", "besorgt", "inqui[et|ète]", "preocupad[o|a]", "preoccupat[o|a]"),
    ("angry", "wütend", "fâché[|e]", "enfadad[o|a]", "arrabbiat[o|a]"),
    ("surprised", "überrascht", "surpris[|e]", "sorprendid[o|a]", "sorpres[o|a]"),
    ("satisfied", "zufrieden", "satisfait[|e]", "satisfech[o|a]", "soddisfatt[o|a]"),
    ("calm", "ruhig", "calme", "tranquil[o|a]", "tranquill[o|a]"),
)

# Jobs: masculine|feminine form per language (English waiter|waitress).
JOBS = _block("""
teacher|teacher ; Lehrer|Lehrerin ; professeur|professeure ; profesor|profesora ; insegnante|insegnante
doctor|doctor ; Arzt|Ärztin ; médecin|médecin ; médico|médica ; medico|medico
nurse|nurse ; Krankenpfleger|Krankenschwester ; infirmier|infirmière ; enfermero|enfermera ; infermiere|infermiera
engineer|engineer ; Ingenieur|Ingenieurin ; ingénieur|ingénieure ; ingeniero|ingeniera ; ingegnere|ingegnere
cook|cook ; Koch|Köchin ; cuisinier|cuisinière ; cocinero|cocinera ; cuoco|cuoca
waiter|waitress ; Kellner|Kellnerin ; serveur|serveuse ; camarero|camarera ; cameriere|cameriera
baker|baker ; Bäcker|Bäckerin ; boulanger|boulangère ; panadero|panadera ; fornaio|fornaia
journalist|journalist ; Journalist|Journalistin ; journaliste|journaliste ; periodista|periodista ; giornalista|giornalista
lawyer|lawyer ; Anwalt|Anwältin ; avocat|avocate ; abogado|abogada ; avvocato|avvocata
architect|architect ; Architekt|Architektin ; architecte|architecte ; arquitecto|arquitecta ; architetto|architetto
photographer|photographer ; Fotograf|Fotografin ; photographe|photographe ; fotógrafo|fotógrafa ; fotografo|fotografa
farmer|farmer ; Landwirt|Landwirtin ; agriculteur|agricultrice ; agricultor|agricultora ; agricoltore|agricoltrice
police officer|police officer ; Polizist|Polizistin ; policier|policière ; policía|policía ; poliziotto|poliziotta
hairdresser|hairdresser ; Friseur|Friseurin ; coiffeur|coiffeuse ; peluquero|peluquera ; parrucchiere|parrucchiera
secretary|secretary ; Sekretär|Sekretärin ; secrétaire|secrétaire ; secretario|secretaria ; segretario|segretaria
musician|musician ; Musiker|Musikerin ; musicien|musicienne ; músico|música ; musicista|musicista
gardener|gardener ; Gärtner|Gärtnerin ; jardinier|jardinière ; jardinero|jardinera ; giardiniere|giardiniera
mechanic|mechanic ; Mechaniker|Mechanikerin ; mécanicien|mécanicienne ; mecánico|mecánica ; meccanico|meccanica
pharmacist|pharmacist ; Apotheker|Apothekerin ; pharmacien|pharmacienne ; farmacéutico|farmacéutica ; farmacista|farmacista
shop assistant|shop assistant ; Verkäufer|Verkäuferin ; vendeur|vendeuse ; dependiente|dependienta ; commesso|commessa
librarian|librarian ; Bibliothekar|Bibliothekarin ; bibliothécaire|bibliothécaire ; bibliotecario|bibliotecaria ; bibliotecario|bibliotecaria
pilot|pilot ; Pilot|Pilotin ; pilote|pilote ; piloto|piloto ; pilota|pilota
""")

# Languages people speak; fr/it take the definite article after "learn" (l'espagnol, lo spagnolo).
LANGUAGES = _block("""
German ; n:Deutsch ; m:allemand ; m:alemán ; m:tedesco
French ; n:Französisch ; m:français ; m:francés ; m:francese
Italian ; n:Italienisch ; m:italien ; m:italiano ; m:italiano
Spanish ; n:Spanisch ; m:espagnol ; m:español ; m:spagnolo
English ; n:Englisch ; m:anglais ; m:inglés ; m:inglese
Russian ; n:Russisch ; m:russe ; m:ruso ; m:russo
Chinese ; n:Chinesisch ; m:chinois ; m:chino ; m:cinese
Japanese ; n:Japanisch ; m:japonais ; m:japonés ; m:giapponese
Portuguese ; n:Portugiesisch ; m:portugais ; m:portugués ; m:portoghese
Greek ; n:Griechisch ; m:grec ; m:griego ; m:greco
Dutch ; n:Niederländisch ; m:néerlandais ; m:neerlandés ; m:olandese
""")

VEHICLES = _block("""
[ground] train|trains ; m:Zug|Züge ; m:train|trains ; m:tren|trenes ; m:treno|treni
[ground] bus|buses ; m:Bus|Busse ; m:bus|bus ; m:autobús|autobuses ; m:autobus|autobus
[air] plane|planes ; n:Flugzeug|Flugzeuge ; m:avion|avions ; m:avión|aviones ; m:aereo|aerei
[ground] ferry|ferries ; f:Fähre|Fähren ; m:ferry|ferrys ; m:ferry|ferris ; m:traghetto|traghetti
""")

# Weekdays: de singular|adverb (montags); es singular|plural.
WEEKDAYS = _block("""
Monday ; m:Montag|montags ; m:lundi ; m:lunes|lunes ; m:lunedì
Tuesday ; m:Dienstag|dienstags ; m:mardi ; m:martes|martes ; m:martedì
Wednesday ; m:Mittwoch|mittwochs ; m:mercredi ; m:miércoles|miércoles ; m:mercoledì
Thursday ; m:Donnerstag|donnerstags ; m:jeudi ; m:jueves|jueves ; m:giovedì
Friday ; m:Freitag|freitags ; m:vendredi ; m:viernes|viernes ; m:venerdì
Saturday ; m:Samstag|samstags ; m:samedi ; m:sábado|sábados ; m:sabato
Sunday ; m:Sonntag|sonntags ; m:dimanche ; m:domingo|domingos ; f:domenica
""")

MONTHS = _block("""
January ; Januar ; janvier ; enero ; gennaio
February ; Februar ; février ; febrero ; febbraio
March ; März ; mars ; marzo ; marzo
April ; April ; avril ; abril ; aprile
May ; Mai ; mai ; mayo ; maggio
June ; Juni ; juin ; junio ; giugno
July ; Juli ; juillet ; julio ; luglio
August ; August ; août ; agosto ; agosto
September ; September ; septembre ; septiembre ; settembre
October ; Oktober ; octobre ; octubre ; ottobre
November ; November ; novembre ; noviembre ; novembre
December ; Dezember ; décembre ; diciembre ; dicembre
""")


def all_entries() -> tuple:
    """Every noun-like entry, for vocabulary statistics and lexicon sanity tests."""
    groups = (PERSONS, CITIES, PLACES, OBJECTS, FURNITURE, MASS_FOOD, COUNT_FOOD, COUNTABLES,
              THING_ADJS, JOBS, LANGUAGES, VEHICLES, WEEKDAYS, MONTHS)
    return tuple(e for group in groups for e in group)


__all__ = [name for name in dir() if name.isupper()] + ["Entry", "by_tag", "all_entries"]
