"""Which words name which objects: the documented normal form and word lists (analysis/naming.py)."""

from __future__ import annotations

import pytest

from saldata.analysis.naming import COCO_SYNONYMS, lemma, names_object, normal_form, object_names, singular

# instances_val2014.json's 80 category names, in its order.
COCO_CATEGORIES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip


def test_the_word_list_covers_exactly_the_80_coco_categories():
    assert len(set(COCO_CATEGORIES)) == 80
    assert set(COCO_SYNONYMS) == set(COCO_CATEGORIES)
    for category, synonyms in COCO_SYNONYMS.items():
        # Every synonym is one word in normal form already: a description's word is one word.
        assert all(" " not in s and normal_form(s) == s for s in synonyms), category


@pytest.mark.parametrize(
    ("plural", "one"),
    [
        ("dogs", "dog"),
        ("puppies", "puppy"),
        ("glasses", "glass"),
        ("benches", "bench"),
        ("toothbrushes", "toothbrush"),
        ("boxes", "box"),
        ("horses", "horse"),
        ("vases", "vase"),
        ("buses", "bus"),
        ("men", "man"),
        ("women", "woman"),
        ("children", "child"),
        ("people", "person"),
        ("mice", "mouse"),
        ("knives", "knife"),
        ("skis", "ski"),
        ("tvs", "tv"),
        ("sheep", "sheep"),
        # Singular words that end in s stay as they are.
        ("bus", "bus"),
        ("glass", "glass"),
        ("tennis", "tennis"),
        ("gas", "gas"),
        ("cat", "cat"),
    ],
)
def test_singular(plural, one):
    assert singular(plural) == one


def test_normal_form_lowers_and_drops_the_possessive():
    assert normal_form("Dog's") == "dog"
    assert normal_form("DOGS'") == "dog"
    assert normal_form("Giraffes") == "giraffe"


def test_a_coco_object_is_named_by_its_category_its_synonyms_and_their_plurals():
    person = object_names("coco", "person", ["person"], [])
    for word in ("person", "People", "man", "Men", "woman", "boy", "girls", "children", "skier"):
        assert names_object(word, person), word
    for word in ("dog", "the", "table", "personal"):
        assert not names_object(word, person), word
    tv = object_names("coco", "tv", ["tv"], [])
    assert names_object("television", tv) and names_object("TV", tv) and names_object("screens", tv)
    hot_dog = object_names("coco", "hot dog", ["hot dog"], [])
    assert names_object("hotdogs", hot_dog) and not names_object("dog", hot_dog)
    assert names_object("dog", object_names("coco", "dog", ["dog"], []))
    assert names_object("puppies", object_names("coco", "dog", ["dog"], []))
    table = object_names("coco", "dining table", ["dining table"], [])
    assert names_object("tables", table) and not names_object("dining", table)
    scissors = object_names("coco", "scissors", ["scissors"], [])
    assert names_object("scissors", scissors) and names_object("scissor", scissors)


def test_a_visual_genome_object_is_named_by_its_names_their_head_nouns_and_its_synsets_lemmas():
    assert lemma("dog.n.01") == "dog" and lemma("tennis_racket.n.01") == "tennis racket"
    dog = object_names("visual_genome", "black dog", ["black dog"], ["dog.n.01"])
    for word in ("dog", "Dogs", "dog's"):
        assert names_object(word, dog), word
    assert not names_object("black", dog)
    assert not names_object("puppy", dog)  # the COCO synonyms are COCO's
    racket = object_names("visual_genome", None, [], ["tennis_racket.n.01"])
    assert names_object("racket", racket) and not names_object("tennis", racket)
    leaves = object_names("visual_genome", "green leaves", ["green leaves", "foliage"], ["leaf.n.01"])
    assert names_object("leaf", leaves) and names_object("leaves", leaves) and names_object("foliage", leaves)
    assert object_names("visual_genome", None, [], []) == frozenset()


def test_a_category_outside_the_list_is_named_by_its_own_name_only():
    assert object_names("coco", "unicorn", ["unicorn"], []) == frozenset({"unicorn"})
