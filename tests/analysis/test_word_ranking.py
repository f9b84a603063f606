"""The best and worst words by NSS: known answers on a constructed table."""

from __future__ import annotations

import pyarrow as pa

from saldata.analysis.word_ranking import WordScore, rank_words
from saldata.schemas.evaluation import metrics_schema


def table(rows: list[tuple]) -> pa.Table:
    """(layer, head, unit, word, nss) rows as metrics.parquet holds them."""
    full = [
        {"idx": i, "image_id": f"im{i}", "layer": layer, "head": head, "unit": unit, "word_index": 0 if word else -1,
         "word": word, "nss": nss, "auc": None, "auc_judd": None, "cc": None, "kld": None, "sim": None}
        for i, (layer, head, unit, word, nss) in enumerate(rows)
    ]  # fmt: skip
    return pa.Table.from_pylist(full, schema=metrics_schema({}))


def test_words_are_ranked_by_mean_nss_over_their_occurrences():
    rows = [(1, -1, "word", "Dog", 2.0), (1, -1, "word", "dog", 1.0), (1, -1, "word", "dog", None)]  # mean 1.5, 2
    rows += [(1, -1, "word", "cat", 0.5), (1, -1, "word", "cat", 0.3)]  # 0.4, 2
    rows += [(1, -1, "word", "sky", -1.0), (1, -1, "word", "sky", -2.0)]  # -1.5, 2
    rows += [(1, -1, "word", "the", 0.0), (1, -1, "word", "the", 0.2)]  # 0.1, 2
    rows += [(1, -1, "word", "once", 9.0)]  # seen once: below the minimum count
    rows += [(0, -1, "word", "sky", 50.0), (0, -1, "word", "sky", 50.0)]  # another layer
    rows += [(1, 3, "word", "sky", 50.0), (1, 3, "word", "sky", 50.0)]  # one head, not the mean
    rows += [(1, -1, "description", None, 50.0), (-1, -1, "centre_bias", None, 50.0)]
    ranking = rank_words(table(rows), layer=1, min_count=2)
    assert (ranking.layer, ranking.min_count, ranking.words) == (1, 2, 5)
    assert ranking.best == [WordScore("dog", 1.5, 2), WordScore("cat", 0.4, 2)]
    assert ranking.worst == [WordScore("sky", -1.5, 2), WordScore("the", 0.1, 2)]


def test_ten_at_each_end_and_never_a_word_twice():
    rows = [(0, -1, "word", f"w{i:02d}", float(i)) for i in range(25) for _ in range(3)]
    ranking = rank_words(table(rows), layer=0)
    assert [s.word for s in ranking.best] == [f"w{i:02d}" for i in range(24, 14, -1)]
    assert [s.word for s in ranking.worst] == [f"w{i:02d}" for i in range(10)]
    assert all(s.count == 3 for s in ranking.best + ranking.worst)
    few = rank_words(table(rows[:9]), layer=0)  # three words: two best, one worst
    assert [s.word for s in few.best] == ["w02", "w01"] and [s.word for s in few.worst] == ["w00"]
    assert rank_words(table(rows), layer=0, min_count=4).best == []
