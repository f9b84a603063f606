"""Does a word of a description name an object? The matcher of ``saldata evaluate --objects``.

A word names an object when its normal form is one of the object's names in normal form:

- **Normal form** (``normal_form``): lower-cased, a trailing possessive ``'s`` or ``'`` dropped, and
  the singular by the rules of ``singular``: a list of irregular plurals (men, women, children,
  people, mice, teeth, knives, ...), then ``-ies`` -> ``-y`` (puppies), ``-sses``/``-ches``/
  ``-shes``/``-xes`` -> drop ``-es`` (glasses, benches, toothbrushes, boxes), and otherwise a
  final ``-s`` dropped, except after ``s``, ``u`` or ``i`` (glass, bus, tennis stay) or in a word
  of three letters or fewer. Rules, not a dictionary: a rare word may come out wrong ("lens" ->
  "len"), the same way on both sides, so names and words still meet.
- **An object's names** (``object_names``): a COCO object's category (``objects.category``, one
  of the 80 COCO categories) and that category's synonyms in ``COCO_SYNONYMS`` below; a Visual
  Genome object's names (``objects.names``) and its synsets' lemmas (``dog.n.01`` -> dog,
  ``tennis_racket.n.01`` -> tennis racket). A name of several words also counts by its last word,
  the head noun of an English noun phrase ("black dog" by "dog", "tennis racket" by "racket");
  COCO's multi-word categories list their single-word names among the synonyms instead, which
  leaves out the misleading heads ("hot dog" is named by "hotdog" and "sausage", not by "dog").

One word may name several objects (every person of a crowd, a "bike" that is a bicycle or a
motorcycle), and a word names no object of a category not in the list.
"""

from __future__ import annotations

from collections.abc import Iterable

SOURCE_COCO = "coco"
SOURCE_VISUAL_GENOME = "visual_genome"

# The words for a person besides the category (and its plural: normal_form makes "people" "person").
PERSON_WORDS = ("man", "woman", "boy", "girl", "child", "kid", "baby", "toddler", "teenager", "teen",
    "adult", "guy", "lady", "gentleman", "human", "player", "skier", "surfer", "skateboarder", "snowboarder",
    "rider", "pedestrian", "worker", "athlete", "batter", "pitcher", "catcher", "umpire", "chef", "cook",
    "officer", "policeman", "soldier", "crowd", "someone", "somebody", "individual", "male", "female",
    "mother", "father", "son", "daughter", "brother", "sister", "friend", "couple", "family", "tourist",
    "spectator", "student")  # fmt: skip

# The 80 COCO categories (instances_*.json's names) and other words for each: the words image
# descriptions use for them, singular. A category names itself; the multi-word ones are named by
# the single words listed (a description's word is one word).
COCO_SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": PERSON_WORDS,
    "bicycle": ("bike", "cycle"),
    "car": ("automobile", "vehicle", "taxi", "cab", "sedan", "suv", "van", "jeep"),
    "motorcycle": ("motorbike", "bike", "scooter", "moped"),
    "airplane": ("plane", "aeroplane", "aircraft", "airliner", "jet", "jetliner"),
    "bus": ("coach",),
    "train": ("locomotive", "tram", "trolley", "subway", "railcar"),
    "truck": ("lorry", "pickup", "firetruck"),
    "boat": ("ship", "sailboat", "canoe", "kayak", "yacht", "ferry", "vessel", "raft"),
    "traffic light": ("light", "stoplight", "signal"),
    "fire hydrant": ("hydrant", "firehydrant"),
    "stop sign": ("sign", "stopsign"),
    "parking meter": ("meter",),
    "bench": ("pew",),
    "bird": ("seagull", "gull", "duck", "pigeon", "parrot", "goose", "swan", "crow", "sparrow", "owl", "eagle"),
    "cat": ("kitten", "kitty"),
    "dog": ("puppy", "pup", "doggy"),
    "horse": ("pony", "foal", "stallion", "mare"),
    "sheep": ("lamb", "ram", "ewe"),
    "cow": ("cattle", "bull", "calf", "ox", "steer"),
    "elephant": (),
    "bear": (),
    "zebra": (),
    "giraffe": (),
    "backpack": ("rucksack", "knapsack"),
    "umbrella": ("parasol",),
    "handbag": ("purse", "bag"),
    "tie": ("necktie",),
    "suitcase": ("luggage", "baggage"),
    "frisbee": ("disc",),
    "skis": ("ski",),
    "snowboard": (),
    "sports ball": ("ball", "football", "baseball", "basketball", "soccerball", "volleyball"),
    "kite": (),
    "baseball bat": ("bat",),
    "baseball glove": ("glove", "mitt"),
    "skateboard": (),
    "surfboard": ("board",),
    "tennis racket": ("racket", "racquet"),
    "bottle": (),
    "wine glass": ("glass", "wineglass"),
    "cup": ("mug",),
    "fork": (),
    "knife": (),
    "spoon": (),
    "bowl": (),
    "banana": (),
    "apple": (),
    "sandwich": ("sub", "burger", "hamburger"),
    "orange": (),
    "broccoli": (),
    "carrot": (),
    "hot dog": ("hotdog", "sausage"),
    "pizza": (),
    "donut": ("doughnut",),
    "cake": ("cupcake",),
    "chair": ("seat", "stool"),
    "couch": ("sofa",),
    "potted plant": ("plant", "houseplant"),
    "bed": (),
    "dining table": ("table",),
    "toilet": (),
    "tv": ("television", "monitor", "screen"),
    "laptop": ("computer", "notebook"),
    "mouse": (),
    "remote": ("controller",),
    "keyboard": (),
    "cell phone": ("phone", "cellphone", "smartphone", "mobile"),
    "microwave": (),
    "oven": ("stove",),
    "toaster": (),
    "sink": ("basin",),
    "refrigerator": ("fridge",),
    "book": ("novel",),
    "clock": (),
    "vase": (),
    "scissors": ("scissor",),
    "teddy bear": ("teddy",),
    "hair drier": ("dryer", "drier", "hairdryer", "hairdrier"),
    "toothbrush": (),
}

IRREGULAR_PLURALS = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "teeth": "tooth", "feet": "foot", "oxen": "ox", "knives": "knife", "leaves": "leaf",
    "shelves": "shelf", "wolves": "wolf", "calves": "calf", "halves": "half", "loaves": "loaf", "scarves": "scarf",
    "lives": "life", "wives": "wife", "buses": "bus", "potatoes": "potato", "tomatoes": "tomato",
    "skis": "ski", "tvs": "tv", "species": "species", "series": "series",
}  # fmt: skip


def singular(word: str) -> str:
    """The singular of a lower-case English noun, by the rules of this module's docstring."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("sses", "ches", "shes", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normal_form(word: str) -> str:
    """``word`` lower-cased, its possessive dropped, singular: what a word and a name are compared as."""
    text = word.strip().lower()
    for suffix in ("'s", "’s", "'", "’"):
        if text.endswith(suffix) and len(text) > len(suffix):
            text = text[: -len(suffix)]
            break
    return singular(text)


def lemma(synset: str) -> str:
    """A WordNet synset's lemma: ``dog.n.01`` -> ``dog``, ``tennis_racket.n.01`` -> ``tennis racket``."""
    return synset.split(".", 1)[0].replace("_", " ")


def _forms(name: str, head_too: bool) -> set[str]:
    """A name's normal form; for a name of several words (``head_too``), its last word's too."""
    words = name.split()
    if not words:
        return set()
    forms = {" ".join(normal_form(w) for w in words)}
    if head_too:
        forms.add(normal_form(words[-1]))
    return forms


def object_names(source: str, category: str | None, names: Iterable[str], synsets: Iterable[str]) -> frozenset[str]:
    """The normal forms a word must have to name this object (an ``objects`` row's columns)."""
    if source == SOURCE_COCO:
        spelled = [category, *names] if category else list(names)
        found = set().union(*(_forms(n, head_too=False) for n in spelled))
        for synonym in COCO_SYNONYMS.get(category or "", ()):
            found |= _forms(synonym, head_too=False)
        return frozenset(found)
    spelled = [*([category] if category else []), *names, *(lemma(s) for s in synsets)]
    return frozenset(set().union(*(_forms(n, head_too=True) for n in spelled)))


def names_object(word: str, object_forms: frozenset[str]) -> bool:
    """Whether ``word`` names the object whose ``object_names`` are ``object_forms``."""
    return normal_form(word) in object_forms
