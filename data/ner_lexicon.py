"""Sentence templates and gazetteers for the synthetic NER set written by `make_ner.py`.

Each template is one natural sentence written in its language (not a word-for-word swap of the
English; the English gloss follows as a comment). Slots:

    {PER}      a person (male or female)   -> PER     {CITY}     a city or town      -> LOC
    {PER_M}    a man   (gender agreement)  -> PER     {COUNTRY}  a country           -> LOC
    {PER_F}    a woman (gender agreement)  -> PER     {COMPANY}  a company or club   -> ORG
    {num}      a number 2..12              -> O       {GROUP}    an NGO / international body -> ORG
    {year}     a year 1985..2022           -> O

A digit after a slot (`{CITY2}`) asks for a second, different name of the same kind. In a
gazetteer, `the|World Bank` means the entity "World Bank" preceded by an untagged "the".
Names are chosen to fit the templates' grammar: German and Spanish company and NGO names that take
no article, Hausa NGO names headed by a feminine noun (they agree with `ta`), and so on.

Train/dev (English) and test names are partly disjoint on purpose: English uses Anglo-American
people, English-speaking places and companies; each test language uses names of its own region
in their local spelling (Èkó, Tāmaki Makaurau, München). A few international names are shared
(UNICEF, Greenpeace, Amnesty International, Berlin, Nairobi, Kenya, Ghana, Japan ...) so that the test measures
both memorised and new entities. `make_ner.py` prints the overlap.
"""

TEMPLATES: dict[str, list[str]] = {
    "en": [
        "{PER} travelled to {CITY} last week.",
        "{PER} has lived in {CITY} for {num} years.",
        "{PER} works for {COMPANY} as an engineer.",
        "{COMPANY} announced on Monday that it will hire {num} new engineers.",
        "The foreign minister of {COUNTRY} met {PER} in {CITY} yesterday.",
        "{PER} and {PER2} went to the market in the morning.",
        "It rained heavily last night.",
        "The children like to play football after school.",
        "{PER} was born in {CITY}, {COUNTRY}.",
        "{GROUP} sent food to families in {CITY}.",
        "The next meeting of {GROUP} will take place in {CITY} in May.",
        "The government of {COUNTRY} signed an agreement with {COMPANY}.",
        "{PER} teaches at a primary school in {CITY}.",
        "The price of bread has risen sharply this year.",
        "The plane from {CITY} landed in {CITY2} at eleven o'clock.",
        "According to {PER}, the new stadium in {CITY} will open in the autumn.",
        "{PER} joined {COMPANY} in {year}.",
        "Shares in {COMPANY} fell after the report was published.",
        "{PER}, a spokesperson for {GROUP}, said the talks would continue.",
        "Thousands of people visited {CITY} during the festival.",
        "{COMPANY} opened a new office in {CITY}.",
        "We will meet again next week.",
        "{PER} moved from {CITY} to {CITY2} to work for {COMPANY}.",
        "{PER_F} won her first race in {COUNTRY} in {year}.",
        "{PER_M} said that he would return to {COUNTRY} next year.",
    ],
    "de": [
        "{PER} ist letzte Woche nach {CITY} gereist.",  # PER travelled to CITY last week.
        "{PER} wohnt seit {num} Jahren in {CITY}.",  # PER has lived in CITY for num years.
        "{PER} arbeitet seit {year} bei {COMPANY}.",  # PER has worked at COMPANY since year.
        "{COMPANY} will {num} neue Ingenieure einstellen.",  # COMPANY wants to hire num engineers.
        "Der Außenminister von {COUNTRY} hat sich gestern mit {PER} getroffen.",  # The foreign minister of COUNTRY met PER yesterday.
        "{PER} und {PER2} sind am Morgen auf den Markt gegangen.",  # PER and PER2 went to the market in the morning.
        "Gestern Abend hat es stark geregnet.",  # It rained heavily last night.
        "Die Kinder spielen nach der Schule gern Fußball.",  # The children like playing football after school.
        "{PER} wurde in {CITY} geboren.",  # PER was born in CITY.
        "Die Hilfsorganisation {GROUP} hat den Menschen in {CITY} Lebensmittel geschickt.",  # The aid organisation GROUP sent food to the people in CITY.
        "Das nächste Treffen von {GROUP} findet im Mai in {CITY} statt.",  # The next meeting of GROUP takes place in CITY in May.
        "Die Regierung von {COUNTRY} hat einen Vertrag mit {COMPANY} unterschrieben.",  # The government of COUNTRY signed a contract with COMPANY.
        "{PER} unterrichtet an einer Grundschule in {CITY}.",  # PER teaches at a primary school in CITY.
        "Der Brotpreis ist in diesem Jahr deutlich gestiegen.",  # The price of bread rose markedly this year.
        "Das Flugzeug aus {CITY} ist um elf Uhr in {CITY2} gelandet.",  # The plane from CITY landed in CITY2 at eleven.
        "Laut {PER} soll das neue Stadion in {CITY} im Herbst eröffnet werden.",  # According to PER the new stadium in CITY is to open in autumn.
        "Der Sprecher von {GROUP}, {PER_M}, sagte, die Gespräche würden fortgesetzt.",  # GROUP's spokesman, PER, said the talks would continue.
        "{PER} ist von {CITY} nach {CITY2} gezogen, um bei {COMPANY} zu arbeiten.",  # PER moved from CITY to CITY2 to work at COMPANY.
        "Wir treffen uns nächste Woche wieder.",  # We will meet again next week.
    ],
    "es": [
        "{PER} viajó a {CITY} la semana pasada.",  # PER travelled to CITY last week.
        "{PER} vive en {CITY} desde hace {num} años.",  # PER has lived in CITY for num years.
        "{PER} trabaja en {COMPANY} desde {year}.",  # PER has worked at COMPANY since year.
        "{COMPANY} anunció que contratará a {num} nuevos ingenieros.",  # COMPANY announced it will hire num new engineers.
        "El ministro de Exteriores de {COUNTRY} se reunió ayer con {PER}.",  # The foreign minister of COUNTRY met PER yesterday.
        "{PER} y {PER2} fueron al mercado por la mañana.",  # PER and PER2 went to the market in the morning.
        "Anoche llovió mucho.",  # It rained a lot last night.
        "A los niños les gusta jugar al fútbol después de clase.",  # Children like to play football after class.
        "{PER} nació en {CITY}.",  # PER was born in CITY.
        "La organización {GROUP} envió alimentos a los habitantes de {CITY}.",  # The organisation GROUP sent food to the inhabitants of CITY.
        "La próxima reunión de {GROUP} se celebrará en {CITY} en mayo.",  # The next meeting of GROUP will be held in CITY in May.
        "El gobierno de {COUNTRY} firmó un acuerdo con {COMPANY}.",  # The government of COUNTRY signed an agreement with COMPANY.
        "{PER_F} es profesora en un colegio de {CITY}.",  # PER (f.) is a teacher at a school in CITY.
        "{PER_M} es profesor en un colegio de {CITY}.",  # PER (m.) is a teacher at a school in CITY.
        "El precio del pan ha subido mucho este año.",  # The price of bread has risen a lot this year.
        "El avión procedente de {CITY} aterrizó en {CITY2} a las once.",  # The plane from CITY landed in CITY2 at eleven.
        "Según {PER}, el nuevo estadio de {CITY} abrirá sus puertas en otoño.",  # According to PER, CITY's new stadium will open in autumn.
        "El portavoz de {GROUP}, {PER_M}, dijo que las negociaciones continuarán.",  # GROUP's spokesman, PER, said negotiations will continue.
        "{PER} se mudó de {CITY} a {CITY2} para trabajar en {COMPANY}.",  # PER moved from CITY to CITY2 to work at COMPANY.
    ],
    "sw": [
        "{PER} alisafiri kwenda {CITY} wiki iliyopita.",  # PER travelled to CITY last week.
        "{PER} anaishi {CITY} pamoja na familia yake.",  # PER lives in CITY with his/her family.
        "{PER} amefanya kazi katika {COMPANY} kwa miaka {num}.",  # PER has worked at COMPANY for num years.
        "{COMPANY} imetangaza kwamba itaajiri wahandisi wapya {num}.",  # COMPANY has announced it will hire num new engineers.
        "Waziri wa Mambo ya Nje wa {COUNTRY} alikutana na {PER} jana.",  # The foreign minister of COUNTRY met PER yesterday.
        "{PER} na {PER2} walikwenda sokoni asubuhi.",  # PER and PER2 went to the market in the morning.
        "Mvua kubwa ilinyesha usiku wa jana.",  # Heavy rain fell last night.
        "Watoto wanapenda kucheza mpira baada ya shule.",  # Children like to play football after school.
        "{PER} alizaliwa {CITY}, {COUNTRY}.",  # PER was born in CITY, COUNTRY.
        "Msaada wa chakula kutoka {GROUP} umewafikia wakazi wa {CITY}.",  # Food aid from GROUP has reached the residents of CITY.
        "Mkutano wa {GROUP} utafanyika {CITY} mwezi ujao.",  # The meeting of GROUP will take place in CITY next month.
        "Serikali ya {COUNTRY} imesaini mkataba na {COMPANY}.",  # The government of COUNTRY has signed an agreement with COMPANY.
        "{PER} ni mwalimu katika shule ya msingi mjini {CITY}.",  # PER is a teacher at a primary school in CITY.
        "Bei ya mahindi imepanda sana mwaka huu.",  # The price of maize has risen a lot this year.
        "Ndege kutoka {CITY} ilitua {CITY2} saa tano asubuhi.",  # The plane from CITY landed in CITY2 at eleven a.m.
        "Kwa mujibu wa {PER}, uwanja mpya wa {CITY} utafunguliwa mwezi ujao.",  # According to PER, CITY's new stadium will open next month.
        "{PER} amejiunga na {COMPANY} kama mhandisi.",  # PER has joined COMPANY as an engineer.
        "Msemaji wa {GROUP}, {PER}, alisema mazungumzo yataendelea.",  # GROUP's spokesperson, PER, said the talks will continue.
        "{PER} alihama kutoka {CITY} kwenda {CITY2} ili kufanya kazi katika {COMPANY}.",  # PER moved from CITY to CITY2 to work at COMPANY.
    ],
    "yo": [
        "{PER} lọ sí {CITY} ní ọ̀sẹ̀ tó kọjá.",  # PER went to CITY last week.
        "{PER} ń gbé ní {CITY} pẹ̀lú ìdílé rẹ̀.",  # PER lives in CITY with his/her family.
        "{PER} ń ṣiṣẹ́ ní ilé-iṣẹ́ {COMPANY}.",  # PER works at the company COMPANY.
        "Ilé-iṣẹ́ {COMPANY} ti kéde pé òun yóò gba òṣìṣẹ́ tuntun.",  # The company COMPANY has announced that it will hire new workers.
        "Olórí ìjọba {COUNTRY} pàdé {PER} lánàá.",  # The head of government of COUNTRY met PER yesterday.
        "{PER} àti {PER2} lọ sí ọjà ní òwúrọ̀.",  # PER and PER2 went to the market in the morning.
        "Òjò ńlá rọ̀ ní alẹ́ àná.",  # Heavy rain fell last night.
        "Àwọn ọmọdé fẹ́ràn láti gbá bọ́ọ̀lù lẹ́yìn ilé-ìwé.",  # Children like to play football after school.
        "A bí {PER} ní {CITY}.",  # PER was born in CITY.
        "{GROUP} fi oúnjẹ ránṣẹ́ sí àwọn ará {CITY}.",  # GROUP sent food to the people of CITY.
        "Ìpàdé {GROUP} yóò wáyé ní {CITY} ní oṣù tó ń bọ̀.",  # The meeting of GROUP will take place in CITY next month.
        "Ìjọba {COUNTRY} ti fọwọ́ sí àdéhùn pẹ̀lú ilé-iṣẹ́ {COMPANY}.",  # The government of COUNTRY has signed an agreement with COMPANY.
        "{PER} jẹ́ olùkọ́ ní ilé-ìwé kan ní {CITY}.",  # PER is a teacher at a school in CITY.
        "Iye owó àgbàdo ti lọ sókè gan-an ní ọdún yìí.",  # The price of maize has gone up a lot this year.
        "Ọkọ̀ òfurufú láti {CITY} balẹ̀ sí {CITY2} ní aago mọ́kànlá.",  # The plane from CITY landed in CITY2 at eleven.
        "{PER} sọ pé wọn yóò ṣí pápá ìṣeré tuntun ní {CITY} lóṣù tó ń bọ̀.",  # PER said they will open a new stadium in CITY next month.
        "{PER} darapọ̀ mọ́ ilé-iṣẹ́ {COMPANY} gẹ́gẹ́ bí onímọ̀ ẹ̀rọ.",  # PER joined COMPANY as an engineer.
        "Agbẹnusọ {GROUP}, {PER}, sọ pé ìjíròrò náà yóò tẹ̀síwájú.",  # GROUP's spokesperson, PER, said the talks will continue.
        "{PER} kó kúrò ní {CITY} lọ sí {CITY2} láti ṣiṣẹ́ ní ilé-iṣẹ́ {COMPANY}.",  # PER moved from CITY to CITY2 to work at COMPANY.
    ],
    "ha": [
        "{PER_M} ya tafi {CITY} a makon da ya gabata.",  # PER (m.) went to CITY last week.
        "{PER_F} ta koma {CITY} da zama.",  # PER (f.) moved to live in CITY.
        "{PER_M} yana zaune a {CITY} tare da iyalinsa.",  # PER (m.) lives in CITY with his family.
        "{PER_F} tana aiki a kamfanin {COMPANY}.",  # PER (f.) works at the company COMPANY.
        "Kamfanin {COMPANY} ya sanar da cewa zai ɗauki sababbin ma'aikata.",  # The company COMPANY announced it will hire new workers.
        "Ministan harkokin wajen {COUNTRY} ya gana da {PER} jiya.",  # The foreign minister of COUNTRY met PER yesterday.
        "{PER} da {PER2} sun je kasuwa da safe.",  # PER and PER2 went to the market in the morning.
        "An yi ruwan sama mai yawa a daren jiya.",  # There was heavy rain last night.
        "Yara suna son buga ƙwallo bayan makaranta.",  # Children like to play football after school.
        "An haifi {PER} a {CITY}.",  # PER was born in CITY.
        "{GROUP} ta raba abinci ga mazauna {CITY}.",  # GROUP (fem. head noun) distributed food to the residents of CITY.
        "Za a yi taron {GROUP} a {CITY} a wata mai zuwa.",  # The meeting of GROUP will be held in CITY next month.
        "Gwamnatin {COUNTRY} ta sanya hannu kan yarjejeniya da kamfanin {COMPANY}.",  # The government of COUNTRY signed an agreement with the company COMPANY.
        "{PER_M} malami ne a wata makaranta a {CITY}.",  # PER (m.) is a teacher at a school in CITY.
        "{PER_F} malama ce a wata makaranta a {CITY}.",  # PER (f.) is a teacher at a school in CITY.
        "Farashin masara ya tashi sosai a bana.",  # The price of maize rose a lot this year.
        "Jirgin sama daga {CITY} ya sauka a {CITY2} da ƙarfe goma sha ɗaya.",  # The plane from CITY landed in CITY2 at eleven.
        "{PER_M} ya ce za a buɗe sabon filin wasa a {CITY} a wata mai zuwa.",  # PER (m.) said a new stadium will be opened in CITY next month.
        "Kakakin {GROUP}, {PER_M}, ya ce tattaunawar za ta ci gaba.",  # GROUP's spokesman, PER, said the talks will continue.
        "{PER_F} ta yi aiki a kamfanin {COMPANY} na tsawon shekaru {num}.",  # PER (f.) worked at COMPANY for num years.
        "{PER_M} ya ƙaura daga {CITY} zuwa {CITY2} domin ya yi aiki a kamfanin {COMPANY}.",  # PER (m.) moved from CITY to CITY2 to work at COMPANY.
    ],
    "mi": [
        "I haere a {PER} ki {CITY} i tērā wiki.",  # PER went to CITY last week.
        "E noho ana a {PER} ki {CITY} me tōna whānau.",  # PER lives in CITY with his/her family.
        "Kei te mahi a {PER} mā {COMPANY}.",  # PER is working for COMPANY.
        "Kua pānuitia e {COMPANY} ētahi tūranga mahi hou.",  # COMPANY has announced some new jobs.
        "I tūtaki te kaiārahi o {COUNTRY} ki a {PER} inanahi.",  # The leader of COUNTRY met PER yesterday.
        "I haere a {PER} rāua ko {PER2} ki te toa i te ata.",  # PER and PER2 went to the shop in the morning.
        "I heke te ua nui inapō.",  # Heavy rain fell last night.
        "He pai ki ngā tamariki te tākaro whutupōro i muri i te kura.",  # Children like playing rugby after school.
        "I whānau mai a {PER} ki {CITY}.",  # PER was born in CITY.
        "I tukuna e {GROUP} he kai ki ngā tāngata o {CITY}.",  # GROUP sent food to the people of CITY.
        "Ka tū te hui a {GROUP} ki {CITY} ā tērā marama.",  # GROUP's meeting will be held in CITY next month.
        "I hainatia e te kāwanatanga o {COUNTRY} he whakaaetanga me {COMPANY}.",  # The government of COUNTRY signed an agreement with COMPANY.
        "He kaiako a {PER} ki tētahi kura i {CITY}.",  # PER is a teacher at a school in CITY.
        "Kua piki te utu o te miraka i tēnei tau.",  # The price of milk has risen this year.
        "I rere te waka rererangi i {CITY} ki {CITY2} i te ata nei.",  # The plane flew from CITY to CITY2 this morning.
        "Kua uru atu a {PER} ki {COMPANY} hei kaipūkaha.",  # PER has joined COMPANY as an engineer.
        "I kī te māngai o {GROUP}, a {PER}, ka haere tonu ngā kōrero.",  # GROUP's spokesperson, PER, said the talks will go on.
        "E ai ki a {PER}, ka whakatuwheratia te papa tākaro hou i {CITY} ā tērā marama.",  # According to PER, the new sports ground in CITY will open next month.
        "I neke a {PER} i {CITY} ki {CITY2} ki te mahi mā {COMPANY}.",  # PER moved from CITY to CITY2 to work for COMPANY.
    ],
}  # fmt: skip

GAZETTEERS: dict[str, dict[str, list[str]]] = {
    "en": {
        "PER_M": ["James Smith", "Michael Brown", "David Wilson", "Robert Taylor", "Thomas Clarke",
                  "Daniel Evans", "William Turner", "George Harris", "Christopher Hall", "Andrew Walker",
                  "Matthew Wright", "Joseph Green", "Samuel Baker", "Peter Collins", "John Paul Jones",
                  "Mark Anthony Davis"],
        "PER_F": ["Mary Johnson", "Emily Davies", "Sarah Thompson", "Jessica Moore", "Elizabeth White",
                  "Laura Martin", "Rachel Adams", "Hannah Lewis", "Olivia Scott", "Grace Robinson",
                  "Emma Wood", "Charlotte King", "Mary Ann Cooper", "Anne-Marie Hughes"],
        "CITY": ["London", "Manchester", "Chicago", "Boston", "Toronto", "Sydney", "Dublin", "Edinburgh",
                 "Los Angeles", "San Francisco", "New York", "Cape Town", "Nairobi", "Paris", "Berlin",
                 "New Delhi", "Rio de Janeiro", "Salt Lake City"],
        "COUNTRY": ["Kenya", "Nigeria", "Ghana", "Tanzania", "France", "Germany", "Canada", "Brazil",
                    "Japan", "India", "Australia", "Mexico", "Ireland", "South Africa", "New Zealand",
                    "Sri Lanka", "Costa Rica"],
        "COMPANY": ["Microsoft", "General Electric", "Ford", "Tesco", "Barclays", "Rolls-Royce",
                    "British Airways", "Coca-Cola", "Goldman Sachs", "Procter & Gamble", "Johnson & Johnson",
                    "Unilever", "Boeing", "Vodafone", "Marks & Spencer"],
        "GROUP": ["the|United Nations", "the|World Bank", "the|Red Cross", "the|World Health Organization",
                  "the|African Union", "UNICEF", "Greenpeace", "Oxfam", "Amnesty International",
                  "Save the Children", "Doctors Without Borders"],
    },
    "de": {
        "PER_M": ["Lukas Müller", "Jonas Becker", "Felix Schäfer", "Paul Richter", "Maximilian Wolf",
                  "Jan Schwarz", "Tobias Krüger", "Stefan Zimmermann", "Karl-Heinz Braun", "Moritz von Arnim"],
        "PER_F": ["Anna Schmidt", "Sophie Wagner", "Lea Hoffmann", "Marie Koch", "Hannah Klein",
                  "Katharina Neumann", "Julia Schröder", "Sabine Lehmann", "Anna-Lena Vogel", "Clara von Bülow"],
        "CITY": ["Berlin", "Hamburg", "München", "Köln", "Frankfurt am Main", "Leipzig", "Dresden",
                 "Stuttgart", "Wien", "Zürich", "Freiburg im Breisgau", "Nürnberg"],
        "COUNTRY": ["Deutschland", "Frankreich", "Österreich", "Italien", "Spanien", "Polen", "Kenia",
                    "Ägypten", "Japan", "Kanada", "Brasilien", "Neuseeland"],
        "COMPANY": ["Siemens", "Volkswagen", "Bosch", "Adidas", "Lufthansa", "BASF", "SAP", "Allianz",
                    "Carl Zeiss", "Henkel", "Mercedes-Benz", "Hugo Boss", "Heidelberger Druckmaschinen"],
        "GROUP": ["UNICEF", "Greenpeace", "Amnesty International", "Ärzte ohne Grenzen", "Caritas",
                  "Brot für die Welt", "Terre des Hommes", "Oxfam"],
    },
    "es": {
        "PER_M": ["José Martínez", "Carlos Rodríguez", "Javier Sánchez", "Miguel Gómez", "Diego Torres",
                  "Pablo Ruiz", "Juan Carlos Moreno", "Andrés Herrera", "Alejandro Castillo", "Luis Fernando Vargas"],
        "PER_F": ["María García", "Lucía Fernández", "Ana López", "Carmen Pérez", "Sofía Ramírez",
                  "Isabel Flores", "María José Díaz", "Valentina Rojas", "Elena Navarro", "Paula Jiménez"],
        "CITY": ["Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao", "Buenos Aires", "Ciudad de México",
                 "Bogotá", "Lima", "Santiago de Chile", "Quito", "Montevideo", "Las Palmas de Gran Canaria"],
        "COUNTRY": ["España", "México", "Argentina", "Colombia", "Chile", "Perú", "Francia", "Alemania",
                    "Brasil", "Japón", "Estados Unidos", "Costa Rica", "El Salvador"],
        "COMPANY": ["Telefónica", "Iberdrola", "Repsol", "Inditex", "Mercadona", "Banco Santander", "BBVA",
                    "Cemex", "Pemex", "Grupo Bimbo", "Iberia", "Seat"],
        "GROUP": ["Cruz Roja", "Unicef", "Cáritas", "Greenpeace", "Amnistía Internacional",
                  "Médicos Sin Fronteras", "Save the Children", "Oxfam Intermón"],
    },
    "sw": {
        "PER_M": ["Baraka Mwangi", "Juma Hamisi", "Musa Otieno", "Daudi Kimaro", "Salim Mohamed",
                  "Yusufu Makamba", "Hassan Mwinyi Ali", "Peter Kamau", "Omari Shabani", "Joseph Mutua"],
        "PER_F": ["Amina Juma", "Neema Mushi", "Zawadi Wanjiru", "Halima Said", "Rehema Akinyi",
                  "Fatuma Ali", "Grace Njeri", "Mwanaisha Bakari", "Esther Wambui", "Upendo Massawe"],
        "CITY": ["Nairobi", "Mombasa", "Dar es Salaam", "Arusha", "Dodoma", "Kisumu", "Zanzibar",
                 "Mwanza", "Nakuru", "Tanga", "Kampala", "Moshi"],
        "COUNTRY": ["Kenya", "Tanzania", "Uganda", "Rwanda", "Burundi", "Afrika Kusini", "Msumbiji",
                    "Ethiopia", "Ufaransa", "Uingereza", "Marekani", "Uchina", "Ujerumani",
                    "Jamhuri ya Kidemokrasia ya Kongo"],
        "COMPANY": ["Safaricom", "Kenya Airways", "Vodacom Tanzania", "Azam Media", "Equity Bank",
                    "Bakhresa Group", "Tanzania Breweries", "CRDB Bank", "Airtel Tanzania", "Twiga Cement"],
        "GROUP": ["Umoja wa Mataifa", "Jumuiya ya Afrika Mashariki", "Umoja wa Afrika",
                  "Shirika la Afya Duniani", "Msalaba Mwekundu", "Benki ya Dunia", "UNICEF"],
    },
    "yo": {
        "PER_M": ["Adébáyọ̀ Ọlátúnjí", "Kúnlé Afọlábí", "Babátúndé Fáṣọlá", "Dàpọ̀ Àlàbí",
                  "Olúwaṣeun Adéwálé", "Ṣẹ́gun Akínwùmí", "Túndé Bánkọ́lé", "Kọ́lá Oyèbánjí"],
        "PER_F": ["Fúnmiláyọ̀ Àjàyí", "Bùsáyọ̀ Oyèbánjí", "Ṣadé Ògúnbíyìí", "Yétúndé Akínọlá",
                  "Ìyábọ̀ Ọládìpọ̀", "Títílọpẹ́ Bánkọ́lé", "Tèmítọ́pẹ́ Adéwálé", "Fọlákẹ́ Àlàbí"],
        "CITY": ["Èkó", "Ìbàdàn", "Abẹ́òkúta", "Ọ̀yọ́", "Òṣogbo", "Ilé-Ifẹ̀", "Ìlọrin", "Àkúrẹ́",
                 "Ògbómọ̀ṣọ́", "Ìjẹ̀bú-Òde", "Abuja", "Kánò"],
        "COUNTRY": ["Nàìjíríà", "Gánà", "Bẹ̀nẹ̀", "Tógò", "Amẹ́ríkà", "Faransé", "Jámánì", "Ṣáínà", "Kánádà"],
        "COMPANY": ["MTN Nigeria", "Dangote Cement", "First Bank", "Globacom", "Access Bank",
                    "Nigerian Breweries", "Zenith Bank", "Air Peace"],
        "GROUP": ["Àjọ Ìsọ̀kan Orílẹ̀-èdè Àgbáyé", "Àjọ Ìlera Àgbáyé", "Ilé Ìfowópamọ́ Àgbáyé",
                  "UNICEF", "ECOWAS"],
    },
    "ha": {
        "PER_M": ["Musa Abdullahi", "Ibrahim Sani", "Abubakar Garba", "Usman Bello", "Aminu Ɗanladi",
                  "Sani Yakubu", "Haruna Tanko", "Nasiru Ahmad", "Muhammadu Lawal Kano", "Bashir Ɗahiru"],
        "PER_F": ["Aisha Muhammad", "Hauwa Ibrahim", "Zainab Usman", "Fatima Bala", "Maryam Sulaiman",
                  "Hadiza Lawal", "Amina Yusuf", "Halima Shehu", "Rabi Ɗan'azumi", "Binta Musa"],
        "CITY": ["Kano", "Kaduna", "Katsina", "Sakkwato", "Zariya", "Maiduguri", "Bauchi", "Yamai",
                 "Maraɗi", "Zindar", "Abuja", "Legas"],
        "COUNTRY": ["Najeriya", "Nijar", "Ghana", "Kamaru", "Chadi", "Amurka", "Faransa", "Ingila",
                    "Masar", "Saudiyya"],
        "COMPANY": ["Dangote Cement", "MTN Nigeria", "Azman Air", "BUA Group", "Max Air", "Jaiz Bank",
                    "Flour Mills of Nigeria", "Arik Air"],
        "GROUP": ["Majalisar Ɗinkin Duniya", "Hukumar Lafiya ta Duniya", "Ƙungiyar Tarayyar Afirka",
                  "Ƙungiyar Agaji ta Red Cross", "Hukumar Zaɓe ta Ƙasa", "Ƙungiyar ECOWAS"],
    },
    "mi": {
        "PER_M": ["Hēmi Tāwhiri", "Wiremu Ngata", "Rāwiri Tipene", "Tama Kereama", "Pita Hōhepa",
                  "Hōne Te Kani", "Tipene Walker", "Manaia Rātana"],
        "PER_F": ["Mere Parata", "Aroha Te Whata", "Hine Poutama", "Kiri Te Rangi", "Moana Tāwhai",
                  "Ngaire Paewai", "Mereana Hōhaia", "Anahera Kīngi"],
        "CITY": ["Tāmaki Makaurau", "Te Whanganui-a-Tara", "Ōtautahi", "Kirikiriroa", "Ōtepoti",
                 "Rotorua", "Tauranga", "Whangārei", "Heretaunga", "Kaikōura", "Tūranga", "Whakatū"],
        "COUNTRY": ["Aotearoa", "Ahitereiria", "Hāmoa", "Tonga", "Āmerika", "Ingarangi", "Hapani",
                    "Haina", "Wīwī", "Tiamana", "Kuki Airani", "Whītī"],
        "COMPANY": ["Air New Zealand", "Fonterra", "Spark", "Kiwibank", "Fletcher Building", "Zespri",
                    "Whakaata Māori", "Te Māngai Pāho"],
        "GROUP": ["Te Kotahitanga o Te Ao", "Te Rīpeka Whero", "Te Taura Whiri i te Reo Māori",
                  "Te Rūnanga o Ngāi Tahu", "Greenpeace"],
    },
}  # fmt: skip
