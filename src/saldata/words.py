"""Counts in sentences: "1 shard", "2 shards", and the verb that agrees with them."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``count`` and ``noun``, in the plural (``nouns``, else ``noun + "s"``) unless it is 1."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def agree(count: int, one: str, many: str) -> str:
    """The word of ``one`` and ``many`` that goes with ``count`` ("is"/"are", "it"/"them")."""
    return one if count == 1 else many
