"""The built-in fact table: a few hundred facts the factual and style-trap families ask about.

Each relation maps a subject to its answer, with question and answer templates. Distractors
(the wrong answers) come from the same relation, or from a hand-written list where other
subjects' answers would not make sense. Answers are matched as whole words, so no answer
may be a whole-word part of another answer in its relation (a test checks this).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "the United Kingdom": "London", "Ireland": "Dublin", "the Netherlands": "Amsterdam",
    "Belgium": "Brussels", "Switzerland": "Bern", "Austria": "Vienna", "Poland": "Warsaw",
    "the Czech Republic": "Prague", "Slovakia": "Bratislava", "Hungary": "Budapest",
    "Romania": "Bucharest", "Bulgaria": "Sofia", "Greece": "Athens", "Turkey": "Ankara",
    "Russia": "Moscow", "Ukraine": "Kyiv", "Belarus": "Minsk", "Lithuania": "Vilnius",
    "Latvia": "Riga", "Estonia": "Tallinn", "Finland": "Helsinki", "Sweden": "Stockholm",
    "Norway": "Oslo", "Denmark": "Copenhagen", "Iceland": "Reykjavik", "Croatia": "Zagreb",
    "Serbia": "Belgrade", "Slovenia": "Ljubljana", "Albania": "Tirana", "North Macedonia": "Skopje",
    "Montenegro": "Podgorica", "Bosnia and Herzegovina": "Sarajevo", "Moldova": "Chisinau",
    "Georgia": "Tbilisi", "Armenia": "Yerevan", "Azerbaijan": "Baku", "Kazakhstan": "Astana",
    "Uzbekistan": "Tashkent", "Kyrgyzstan": "Bishkek", "Tajikistan": "Dushanbe",
    "Turkmenistan": "Ashgabat", "Mongolia": "Ulaanbaatar", "China": "Beijing", "Japan": "Tokyo",
    "South Korea": "Seoul", "North Korea": "Pyongyang", "India": "New Delhi",
    "Pakistan": "Islamabad", "Bangladesh": "Dhaka", "Nepal": "Kathmandu", "Bhutan": "Thimphu",
    "Afghanistan": "Kabul", "Iran": "Tehran", "Iraq": "Baghdad", "Syria": "Damascus",
    "Jordan": "Amman", "Lebanon": "Beirut", "Saudi Arabia": "Riyadh", "Oman": "Muscat",
    "Qatar": "Doha", "the United Arab Emirates": "Abu Dhabi", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "Cambodia": "Phnom Penh", "Laos": "Vientiane", "Myanmar": "Naypyidaw",
    "Malaysia": "Kuala Lumpur", "Indonesia": "Jakarta", "the Philippines": "Manila",
    "Australia": "Canberra", "New Zealand": "Wellington", "Fiji": "Suva",
    "Papua New Guinea": "Port Moresby", "Canada": "Ottawa", "the United States": "Washington, D.C.",
    "Cuba": "Havana", "Jamaica": "Kingston", "Haiti": "Port-au-Prince",
    "the Dominican Republic": "Santo Domingo", "Honduras": "Tegucigalpa", "Nicaragua": "Managua",
    "Costa Rica": "San Jose", "Colombia": "Bogota", "Venezuela": "Caracas", "Ecuador": "Quito",
    "Peru": "Lima", "Chile": "Santiago", "Argentina": "Buenos Aires", "Uruguay": "Montevideo",
    "Paraguay": "Asuncion", "Brazil": "Brasilia", "Egypt": "Cairo", "Libya": "Tripoli",
    "Tunisia": "Tunis", "Algeria": "Algiers", "Morocco": "Rabat", "Sudan": "Khartoum",
    "Ethiopia": "Addis Ababa", "Kenya": "Nairobi", "Uganda": "Kampala", "Tanzania": "Dodoma",
    "Rwanda": "Kigali", "Nigeria": "Abuja", "Ghana": "Accra", "Senegal": "Dakar", "Mali": "Bamako",
    "Niger": "Niamey", "Chad": "N'Djamena", "Cameroon": "Yaounde", "Angola": "Luanda",
    "Zambia": "Lusaka", "Zimbabwe": "Harare", "Mozambique": "Maputo", "Madagascar": "Antananarivo",
    "Namibia": "Windhoek", "Botswana": "Gaborone", "Somalia": "Mogadishu", "Eritrea": "Asmara",
    "Liberia": "Monrovia", "Sierra Leone": "Freetown", "Gabon": "Libreville", "Malawi": "Lilongwe",
}

# name: (symbol, atomic number). Symbols that are also common English words (He, Be, As, I,
# In, At) are left out of the symbol questions; see SYMBOL_EXCLUDED.
ELEMENTS = {
    "hydrogen": ("H", 1), "helium": ("He", 2), "lithium": ("Li", 3), "beryllium": ("Be", 4),
    "boron": ("B", 5), "carbon": ("C", 6), "nitrogen": ("N", 7), "oxygen": ("O", 8),
    "fluorine": ("F", 9), "neon": ("Ne", 10), "sodium": ("Na", 11), "magnesium": ("Mg", 12),
    "aluminium": ("Al", 13), "silicon": ("Si", 14), "phosphorus": ("P", 15), "sulfur": ("S", 16),
    "chlorine": ("Cl", 17), "argon": ("Ar", 18), "potassium": ("K", 19), "calcium": ("Ca", 20),
    "titanium": ("Ti", 22), "chromium": ("Cr", 24), "manganese": ("Mn", 25), "iron": ("Fe", 26),
    "cobalt": ("Co", 27), "nickel": ("Ni", 28), "copper": ("Cu", 29), "zinc": ("Zn", 30),
    "gallium": ("Ga", 31), "germanium": ("Ge", 32), "arsenic": ("As", 33), "selenium": ("Se", 34),
    "bromine": ("Br", 35), "krypton": ("Kr", 36), "rubidium": ("Rb", 37), "strontium": ("Sr", 38),
    "silver": ("Ag", 47), "tin": ("Sn", 50), "antimony": ("Sb", 51), "iodine": ("I", 53),
    "xenon": ("Xe", 54), "caesium": ("Cs", 55), "barium": ("Ba", 56), "tungsten": ("W", 74),
    "platinum": ("Pt", 78), "gold": ("Au", 79), "mercury": ("Hg", 80), "lead": ("Pb", 82),
    "bismuth": ("Bi", 83), "radon": ("Rn", 86), "radium": ("Ra", 88), "uranium": ("U", 92),
    "plutonium": ("Pu", 94),
}
SYMBOL_EXCLUDED = {"helium", "beryllium", "arsenic", "iodine"}

EVENT_YEARS = {
    "the Apollo 11 Moon landing": 1969, "the fall of the Berlin Wall": 1989,
    "the start of World War I": 1914, "the end of World War II": 1945,
    "the storming of the Bastille": 1789, "the signing of the US Declaration of Independence": 1776,
    "Columbus's first voyage reaching the Americas": 1492, "the sealing of the Magna Carta": 1215,
    "the Battle of Hastings": 1066, "the sinking of the Titanic": 1912,
    "the Wright brothers' first powered flight": 1903, "the October Revolution in Russia": 1917,
    "the introduction of euro banknotes and coins": 2002, "the dissolution of the Soviet Union": 1991,
    "the launch of Sputnik 1": 1957, "the Chernobyl disaster": 1986,
    "the launch of the Hubble Space Telescope": 1990, "the release of the first iPhone": 2007,
    "Nelson Mandela becoming President of South Africa": 1994,
    "the signing of the Treaty of Versailles": 1919, "the end of the American Civil War": 1865,
    "the Great Fire of London": 1666, "the defeat of the Spanish Armada": 1588,
    "Martin Luther posting his Ninety-five Theses": 1517, "the Battle of Waterloo": 1815,
    "the eruption of Krakatoa": 1883, "the opening of the Suez Canal": 1869,
    "the first modern Olympic Games in Athens": 1896, "the Wall Street Crash": 1929,
    "the independence of India": 1947, "the founding of the United Nations": 1945,
    "the publication of On the Origin of Species": 1859,
    "Einstein's paper on special relativity": 1905, "Alexander Fleming's discovery of penicillin": 1928,
    "the publication of the DNA double-helix structure": 1953,
    "Yuri Gagarin's first human spaceflight": 1961, "the attack on Pearl Harbor": 1941,
    "the fall of Constantinople": 1453, "the assassination of John F. Kennedy": 1963,
    "the opening of the Panama Canal": 1914, "the first ascent of Mount Everest": 1953,
}

COUNTS = {
    "centimetres in a metre": 100, "millimetres in a centimetre": 10, "metres in a kilometre": 1000,
    "grams in a kilogram": 1000, "millilitres in a litre": 1000, "seconds in a minute": 60,
    "minutes in an hour": 60, "seconds in an hour": 3600, "hours in a day": 24,
    "days in a leap year": 366, "days in a common (non-leap) year": 365, "weeks in a year": 52,
    "months in a year": 12, "inches in a foot": 12, "feet in a yard": 3, "yards in a mile": 1760,
    "feet in a mile": 5280, "ounces in a pound": 16, "pounds in a stone": 14,
    "degrees in a right angle": 90, "degrees in a full circle": 360, "sides on a hexagon": 6,
    "sides on an octagon": 8, "sides on a pentagon": 5, "years in a century": 100,
    "years in a millennium": 1000, "years in a decade": 10, "bits in a byte": 8,
    "bones in the adult human body": 206, "teeth in a full set of adult human teeth": 32,
    "chromosomes in a typical human body cell": 46, "players per side on the field in association football": 11,
    "strings on a standard guitar": 6, "keys on a standard piano": 88,
    "planets in the Solar System": 8, "continents on Earth (in the seven-continent model)": 7,
    "hearts in an octopus": 3, "legs on a spider": 8, "legs on an insect": 6,
    "squares on a chessboard": 64, "cards in a standard deck without jokers": 52,
    "minutes in a day": 1440, "faces on a cube": 6, "edges on a cube": 12,
}

AUTHORS = {
    "Pride and Prejudice": "Jane Austen", "Nineteen Eighty-Four": "George Orwell",
    "Hamlet": "William Shakespeare", "War and Peace": "Leo Tolstoy",
    "Crime and Punishment": "Fyodor Dostoevsky", "Don Quixote": "Miguel de Cervantes",
    "Moby-Dick": "Herman Melville", "The Great Gatsby": "F. Scott Fitzgerald",
    "To Kill a Mockingbird": "Harper Lee", "One Hundred Years of Solitude": "Gabriel Garcia Marquez",
    "the Odyssey": "Homer", "Jane Eyre": "Charlotte Bronte", "Wuthering Heights": "Emily Bronte",
    "Frankenstein": "Mary Shelley", "Dracula": "Bram Stoker", "Ulysses": "James Joyce",
    "the Divine Comedy": "Dante Alighieri", "Les Miserables": "Victor Hugo",
    "The Old Man and the Sea": "Ernest Hemingway", "Brave New World": "Aldous Huxley",
    "The Catcher in the Rye": "J. D. Salinger", "Great Expectations": "Charles Dickens",
    "Adventures of Huckleberry Finn": "Mark Twain", "The Metamorphosis": "Franz Kafka",
    "Madame Bovary": "Gustave Flaubert", "Anna Karenina": "Leo Tolstoy",
    "Things Fall Apart": "Chinua Achebe", "The Hobbit": "J. R. R. Tolkien",
    "Lord of the Flies": "William Golding", "Beloved": "Toni Morrison", "the Republic": "Plato",
    "Faust": "Johann Wolfgang von Goethe", "Mrs Dalloway": "Virginia Woolf",
    "The Little Prince": "Antoine de Saint-Exupery", "Fahrenheit 451": "Ray Bradbury",
    "Animal Farm": "George Orwell", "The Raven": "Edgar Allan Poe", "Leaves of Grass": "Walt Whitman",
    "Gulliver's Travels": "Jonathan Swift", "Robinson Crusoe": "Daniel Defoe",
    "Treasure Island": "Robert Louis Stevenson", "Oliver Twist": "Charles Dickens",
}

PAINTERS = {
    "the Mona Lisa": "Leonardo da Vinci", "The Starry Night": "Vincent van Gogh",
    "Guernica": "Pablo Picasso", "The Persistence of Memory": "Salvador Dali",
    "The Birth of Venus": "Sandro Botticelli", "The Night Watch": "Rembrandt",
    "Girl with a Pearl Earring": "Johannes Vermeer", "The Scream": "Edvard Munch",
    "The Last Supper": "Leonardo da Vinci", "Impression, Sunrise": "Claude Monet",
    "American Gothic": "Grant Wood", "The Creation of Adam": "Michelangelo",
    "The Garden of Earthly Delights": "Hieronymus Bosch", "Las Meninas": "Diego Velazquez",
    "Nighthawks": "Edward Hopper", "The School of Athens": "Raphael",
    "Liberty Leading the People": "Eugene Delacroix", "The Arnolfini Portrait": "Jan van Eyck",
    "Les Demoiselles d'Avignon": "Pablo Picasso", "The Third of May 1808": "Francisco Goya",
    "A Sunday Afternoon on the Island of La Grande Jatte": "Georges Seurat",
}

CURRENCIES = {
    "Japan": "yen", "South Korea": "won", "India": "rupee", "the United Kingdom": "pound sterling",
    "Russia": "ruble", "Switzerland": "franc", "Poland": "zloty", "Sweden": "krona",
    "Norway": "krone", "Brazil": "real", "Mexico": "peso", "South Africa": "rand",
    "Thailand": "baht", "Vietnam": "dong", "Indonesia": "rupiah", "Israel": "shekel",
    "Turkey": "lira", "Hungary": "forint", "the Czech Republic": "koruna", "Nigeria": "naira",
    "Kenya": "shilling", "Malaysia": "ringgit", "Ukraine": "hryvnia", "Bangladesh": "taka",
    "Saudi Arabia": "riyal", "Morocco": "dirham", "Ghana": "cedi", "Peru": "sol", "Germany": "euro",
}

# question -> (answer, distractors)
MISC = {
    "the largest planet in the Solar System": ("Jupiter", ("Saturn", "Neptune", "Uranus")),
    "the planet closest to the Sun": ("Mercury", ("Venus", "Mars", "Earth")),
    "the planet known as the Red Planet": ("Mars", ("Venus", "Jupiter", "Mercury")),
    "the largest ocean on Earth": ("the Pacific Ocean", ("the Atlantic Ocean", "the Indian Ocean", "the Arctic Ocean")),
    "the highest mountain above sea level": ("Mount Everest", ("K2", "Kangchenjunga", "Mont Blanc")),
    "the largest hot desert in the world": ("the Sahara", ("the Gobi", "the Kalahari", "the Atacama")),
    "the hardest naturally occurring mineral": ("diamond", ("quartz", "corundum", "topaz")),
    "the gas plants mainly absorb for photosynthesis": ("carbon dioxide", ("oxygen", "nitrogen", "methane")),
    "the organelle known as the powerhouse of the cell": ("the mitochondrion", ("the nucleus", "the ribosome", "the Golgi apparatus")),
    "the largest organ of the human body": ("the skin", ("the liver", "the brain", "the lungs")),
    "the scientist who developed the general theory of relativity": ("Albert Einstein", ("Isaac Newton", "Niels Bohr", "Max Planck")),
    "the first person to walk on the Moon": ("Neil Armstrong", ("Buzz Aldrin", "Yuri Gagarin", "Michael Collins")),
    "the scientist who discovered penicillin": ("Alexander Fleming", ("Louis Pasteur", "Robert Koch", "Joseph Lister")),
    "the astronomer who proposed a heliocentric model in De revolutionibus": ("Nicolaus Copernicus", ("Galileo Galilei", "Johannes Kepler", "Tycho Brahe")),
    "the largest country by area": ("Russia", ("Canada", "China", "the United States")),
    "the largest mammal": ("the blue whale", ("the African elephant", "the sperm whale", "the giraffe")),
    "the fastest land animal": ("the cheetah", ("the lion", "the pronghorn", "the greyhound")),
    "the tallest living animal": ("the giraffe", ("the African elephant", "the ostrich", "the moose")),
    "the chemical formula of water": ("H2O", ("CO2", "H2O2", "HO2")),
    "the longest bone in the human body": ("the femur", ("the tibia", "the humerus", "the fibula")),
    "the smallest prime number": ("2", ("1", "3", "0")),
    "the language with the most native speakers": ("Mandarin Chinese", ("English", "Spanish", "Hindi")),
    "the metal that is liquid at room temperature": ("mercury", ("gallium", "lead", "tin")),
    "the closest star to Earth": ("the Sun", ("Proxima Centauri", "Sirius", "Alpha Centauri A")),
}


@dataclass(frozen=True)
class Relation:
    name: str
    facts: dict[str, str]
    questions: tuple[str, ...]  # "{s}" is the subject
    answers: tuple[str, ...]  # "{s}" subject, "{a}" answer
    case_sensitive: bool = False
    numeric: bool = False
    distractors: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _relations() -> dict[str, Relation]:
    rels = [
        Relation("capital", dict(CAPITALS), (
            "What is the capital of {s}?", "[Which|What] city is the capital of {s}?",
            "Name the [capital city|capital] of {s}.", "[Quick question|Trivia time]: what's the capital of {s}?",
            "I always forget: what is the capital city of {s}?", "What city serves as the capital of {s}?"),
            ("The capital of {s} is {a}.", "{a} is the capital of {s}.", "It's {a}.", "{a}.",
             "The capital city of {s} is {a}.")),
        Relation("element_symbol", {k: v[0] for k, v in ELEMENTS.items() if k not in SYMBOL_EXCLUDED}, (
            "What is the chemical symbol for {s}?", "Which symbol represents {s} on the periodic table?",
            "[Give|Tell me] the element symbol of {s}.", "How is {s} written as a chemical symbol?"),
            ("The chemical symbol for {s} is {a}.", "{s} has the symbol {a}.", "It's {a}.",
             "On the periodic table, {s} is {a}."), case_sensitive=True),
        Relation("atomic_number", {k: str(v[1]) for k, v in ELEMENTS.items()}, (
            "What is the atomic number of {s}?", "How many protons does an atom of {s} have?",
            "[Which|What] atomic number does {s} have?", "{S}: what's its atomic number?"),
            ("The atomic number of {s} is {a}.", "{S} has atomic number {a}.", "It's {a}.",
             "An atom of {s} has {a} protons, so its atomic number is {a}."), numeric=True),
        Relation("event_year", {k: str(v) for k, v in EVENT_YEARS.items()}, (
            "In what year did {s} happen?", "When was {s}? Just the year, please.",
            "[Which|What] year was {s}?", "Do you know the year of {s}?"),
            ("{S} was in {a}.", "It happened in {a}.", "{a}.", "The year was {a}."), numeric=True),
        Relation("count", {k: str(v) for k, v in COUNTS.items()}, (
            "How many {s} are there?", "What is the number of {s}?", "[Quick question|Trivia]: how many {s}?",
            "Can you tell me how many {s} there are?"),
            ("There are {a} {s}.", "The number is {a}.", "{a}.", "There are {a}."), numeric=True),
        Relation("author", dict(AUTHORS), (
            "Who wrote {s}?", "Who is the author of {s}?", "{S} was written by whom?",
            "Which writer [wrote|authored] {s}?"),
            ("{s} was written by {a}.", "{a} wrote {s}.", "The author is {a}.", "{a}.")),
        Relation("painter", dict(PAINTERS), (
            "Who painted {s}?", "Which artist [painted|created] {s}?", "{S} is the work of which painter?",
            "Who is the painter behind {s}?"),
            ("{s} was painted by {a}.", "{a} painted {s}.", "The painter is {a}.", "{a}.")),
        Relation("currency", dict(CURRENCIES), (
            "What is the currency of {s}?", "Which currency [is used|do people use] in {s}?",
            "What money do they use in {s}?", "Name the official currency of {s}."),
            ("The currency of {s} is the {a}.", "{s} uses the {a}.", "It's the {a}.", "The {a}.")),
        Relation("misc", {k: v[0] for k, v in MISC.items()}, (
            "What is {s}?", "Can you name {s}?", "[Quick question|Trivia]: what is {s}?",
            "Tell me {s}, please."),
            ("{S} is {a}.", "That would be {a}.", "It's {a}.", "{A}."),
            distractors={k: v[1] for k, v in MISC.items()}),
    ]
    return {r.name: r for r in rels}


RELATIONS = _relations()
FACT_COUNT = sum(len(r.facts) for r in RELATIONS.values())


def lookup(relation: str, subject: str) -> str:
    """The table's answer for (relation, subject); KeyError names the unknown fact."""
    try:
        return RELATIONS[relation].facts[subject]
    except KeyError:
        raise KeyError(f"no fact {relation}:{subject!r} in the world's fact table") from None
