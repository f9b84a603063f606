"""Words from token character offsets, with the tiny model's real byte-level BPE tokenizer."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from saldata.extractors.words import group_words, token_offsets


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return AutoTokenizer.from_pretrained(tiny_model_dir)


TEXTS = [
    "A red dog sits next to the old car.",
    "The café's left-hand sign;\n  it is naïve, don't you think?",
    " leading space,punctuation!!and\tTabs 42x",
    "emoji \U0001f600 between wörds",
]


@pytest.mark.parametrize("text", TEXTS)
def test_offsets_tile_the_decoded_text(tokenizer, text):
    ids = tokenizer.encode(text, add_special_tokens=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    spans = token_offsets(tokenizer, ids, decoded)
    assert len(spans) == len(ids)
    assert spans[0][0] == 0 and spans[-1][1] == len(decoded)
    assert all(a <= b for a, b in spans) and all(spans[i][1] == spans[i + 1][0] for i in range(len(spans) - 1))
    assert "".join(decoded[a:b] for a, b in spans) == decoded


def test_a_character_split_across_tokens_goes_to_the_token_that_completes_it(tokenizer):
    text = "naïve"
    ids = tokenizer.encode(text, add_special_tokens=False)
    pieces = [tokenizer.decode([i]) for i in ids]
    assert any("\ufffd" in p for p in pieces), "the fixture needs a character split across byte-level tokens"
    spans = token_offsets(tokenizer, ids, text)
    (word,) = group_words(text, spans)
    assert word.text == "naïve" and (word.first_position, word.last_position) == (0, len(ids) - 1)


def test_words_skip_spaces_and_punctuation_and_keep_inner_hyphens(tokenizer):
    text = TEXTS[1]
    ids = tokenizer.encode(text, add_special_tokens=False)
    words = group_words(text, token_offsets(tokenizer, ids, text))
    assert [w.text for w in words] == [
        "The", "café's", "left-hand", "sign", "it", "is", "naïve", "don't", "you", "think"
    ]  # fmt: skip
    for w in words:
        assert text[w.char_start : w.char_end] == w.text
        covered = tokenizer.decode(ids[w.first_position : w.last_position + 1])
        assert w.text in covered  # the word's tokens spell it (plus glued spaces/punctuation)
        # and no smaller token range does
        assert w.text not in tokenizer.decode(ids[w.first_position + 1 : w.last_position + 1])
        assert w.text not in tokenizer.decode(ids[w.first_position : w.last_position])


def test_special_tokens_get_empty_spans(tokenizer):
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    ids = [*tokenizer.encode("a dog", add_special_tokens=False), eot]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    spans = token_offsets(tokenizer, ids, text)
    assert spans[-1][0] == spans[-1][1] == len(text)
