"""Which words' maps predict fixations best: the words of one layer ranked by their mean NSS.

A word's score is the mean NSS of its maps (``metrics.parquet``'s ``word`` units, heads averaged)
over its occurrences, words compared in lower case; a word seen fewer than ``min_count`` times is
left out, its mean being mostly noise. ``saldata evaluate`` prints the ten best and ten worst.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

from saldata.schemas.evaluation import HEAD_MEAN, UNIT_WORD

MIN_WORD_COUNT = 3  # occurrences a word needs to be ranked
TOP_WORDS = 10  # words listed at each end


@dataclass(frozen=True, slots=True)
class WordScore:
    word: str  # lower case
    nss: float  # mean over the occurrences with a defined NSS
    count: int  # those occurrences


@dataclass(frozen=True, slots=True)
class WordRanking:
    layer: int
    min_count: int
    words: int  # distinct words scored at the layer
    best: list[WordScore]  # highest mean NSS first
    worst: list[WordScore]  # lowest first; never a word of ``best`` (with few words, the lower half)


def rank_words(table: pa.Table, layer: int, min_count: int = MIN_WORD_COUNT, top: int = TOP_WORDS) -> WordRanking:
    """The ``top`` best and worst words of ``layer`` by mean NSS, among those seen ``min_count`` times or more."""
    columns = table.select(["layer", "head", "unit", "word", "nss"]).to_pydict()
    scores: dict[str, list[float]] = {}
    for at, head, unit, word, nss in zip(*columns.values()):
        if at == layer and head == HEAD_MEAN and unit == UNIT_WORD and nss is not None and math.isfinite(nss):
            scores.setdefault(word.lower(), []).append(nss)
    ranked = sorted(
        (WordScore(word, sum(v) / len(v), len(v)) for word, v in scores.items() if len(v) >= min_count),
        key=lambda s: (-s.nss, s.word),
    )
    best = ranked[: min(top, (len(ranked) + 1) // 2)]  # fewer than 2 * top ranked: half at each end
    worst = ranked[len(best) :][::-1][:top]
    return WordRanking(layer, min_count, len(scores), best, worst)
