"""Tokens to words, from where each token's characters land in the decoded text.

Byte-level BPE splits words anywhere (" giraffe" -> " gir", "affe"), glues leading spaces and
punctuation onto pieces, and can split one UTF-8 character across two tokens. Matching token
strings against words breaks on all of that; character spans do not. A token's span comes
from decoding the sequence one token longer each time (the tokenizer's own offsets for the
generated ids); a word is a run of word characters, and its tokens are those whose spans
overlap it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Letters and digits, with inner hyphens and apostrophes kept ("left-hand", "don't").
WORD_PATTERN = re.compile(r"\w+(?:[-'\u2019]\w+)*")
REPLACEMENT_CHAR = "\ufffd"  # what a token ending mid UTF-8 character decodes to


@dataclass(frozen=True, slots=True)
class Word:
    index: int
    text: str
    first_position: int  # first token (row of the per-token arrays) of the word
    last_position: int  # last token, inclusive
    char_start: int
    char_end: int


def token_offsets(tokenizer, ids: list[int], text: str) -> list[tuple[int, int]]:
    """Character span of each token in ``text`` (= ``decode(ids, skip_special_tokens=True)``).

    Special tokens and the first half of a split character get an empty span; spans are
    contiguous and cover ``text``.
    """
    spans, end = [], 0
    for k in range(1, len(ids) + 1):
        prefix = tokenizer.decode(ids[:k], skip_special_tokens=True)
        if k < len(ids):
            prefix = prefix.rstrip(REPLACEMENT_CHAR)
        new_end = max(end, _common_prefix_length(prefix, text))
        spans.append((end, new_end))
        end = new_end
    if spans and end < len(text):  # decoding a prefix can clean up differently; the last token takes the rest
        spans[-1] = (spans[-1][0], len(text))
    return spans


def group_words(text: str, offsets: list[tuple[int, int]]) -> list[Word]:
    """The words of ``text``, each with the first and last token whose span overlaps it."""
    words = []
    for match in WORD_PATTERN.finditer(text):
        start, end = match.span()
        positions = [p for p, (a, b) in enumerate(offsets) if a < end and b > start]
        if positions:
            words.append(Word(len(words), match.group(), positions[0], positions[-1], start, end))
    return words


def _common_prefix_length(a: str, b: str) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n
