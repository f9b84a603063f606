"""What ``saldata show`` draws of an image: which words (``--words``) and which head (``--head``).

A word is named by its text (every occurrence, in any case) or by its index in the description
(``words.word_index``, from 0); a token of digits only is an index, so a word written in digits
is named by its index. Words are drawn in the order named, each once.
"""

from __future__ import annotations

from saldata.errors import ConfigError

SHOWN_WORDS = 8  # words listed in an error, to pick from


def pick_words(words: list[dict], spec: str, image_id: str) -> list[int]:
    """Positions in ``words`` (an image's rows of the ``words`` table) of the words ``spec`` names."""
    chosen: list[int] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise ConfigError(f"--words {spec!r} has an empty item; give words or indices separated by commas.")
        if item.isdigit():
            found = [i for i, w in enumerate(words) if w["word_index"] == int(item)]
        else:
            found = [i for i, w in enumerate(words) if w["word"].lower() == item.lower()]
        if not found:
            raise ConfigError(_not_there(item, words, image_id))
        chosen += [i for i in found if i not in chosen]
    return chosen


def _not_there(item: str, words: list[dict], image_id: str) -> str:
    if not words:
        return f"--words {item!r}: the description of {image_id} has no words."
    listed = ", ".join(f"{w['word_index']} {w['word']}" for w in words[:SHOWN_WORDS])
    more = f", ... ({len(words)} in all)" if len(words) > SHOWN_WORDS else ""
    return (
        f"--words {item!r} is neither a word of {image_id}'s description nor an index 0..{len(words) - 1}; "
        f"its words (index text): {listed}{more}."
    )


def check_head(head: int, heads_mode: str | None, stored: int, out) -> None:
    """A one-line ConfigError unless ``head`` is a head the output stored on its own."""
    if heads_mode == "mean":
        raise ConfigError(
            f"--head needs an output extracted with --heads all; {out} stored the heads' mean (--heads mean)."
        )
    if not 0 <= head < stored:
        raise ConfigError(f"--head {head} is out of range: {out} stored heads 0..{stored - 1}.")
