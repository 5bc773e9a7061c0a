"""The word n-gram index finds exactly the features that looking up every n-gram string finds."""

import io
from collections import Counter

import numpy as np
import pytest

from functions.errors import CorruptModel
from functions.model import compact
from functions.model.analyzers import Analyzer
from functions.model.compact import CompactModel, FeatureBlock
from functions.model.word_index import WordIndex

VOCABULARY_TEXTS = ["the cup final", "rain and wind", "the cup", "vote on the budget", "bb cc", "aa bb cc dd ee"]
TEXTS = [
    "",
    "unknown",
    "zzz bb cc",  # an unknown token leading the window (0, bb, cc) must not read as the bigram "bb cc"
    "bb zzz cc the cup final",
    "the cup the cup the cup final final",
    "rain",
    "aa bb cc dd ee aa bb cc dd ee",
    "The CUP final, and: rain and wind!",
    "vote on the budget " * 30,
]


def features(analyzer: Analyzer) -> tuple[FeatureBlock, FeatureBlock]:
    """The same vocabulary (every n-gram of VOCABULARY_TEXTS) with and without an index."""
    terms = sorted({gram for text in VOCABULARY_TEXTS for gram in analyzer(text)})
    index = WordIndex.build(terms, analyzer)
    assert index is not None
    return FeatureBlock(analyzer, terms, None, index=index), FeatureBlock(analyzer, terms, None)


def occurrences(rows: np.ndarray, columns: np.ndarray) -> Counter:
    return Counter(zip(rows.tolist(), columns.tolist()))


@pytest.mark.parametrize("ngram_range", [(1, 1), (1, 2), (1, 3), (2, 3), (3, 3), (1, 5)])
def test_the_index_finds_each_occurrence_the_string_lookup_finds(ngram_range):
    analyzer = Analyzer("word", ngram_range)
    indexed, plain = features(analyzer)
    found = indexed.index.find(map(analyzer.tokens, TEXTS), len(TEXTS))
    expected = plain._lookup(TEXTS)
    assert occurrences(*found) == occurrences(*expected)
    assert sum(occurrences(*found).values()) > len(TEXTS)  # the texts do hold vocabulary n-grams
    rows, columns, values = indexed.scaled_counts(TEXTS)
    plain_rows, plain_columns, plain_values = plain.scaled_counts(TEXTS)
    assert rows.tolist() == plain_rows.tolist() and columns.tolist() == plain_columns.tolist()
    np.testing.assert_array_equal(values, plain_values)


def test_an_unknown_token_leading_a_window_does_not_count_as_the_shorter_ngram():
    analyzer = Analyzer("word", (1, 3))
    indexed, _ = features(analyzer)
    rows, columns = indexed.index.find([analyzer.tokens("zzz bb cc")], 1)
    assert sorted(indexed.terms[c] for c in columns) == ["bb", "bb cc", "cc"]
    assert rows.tolist() == [0, 0, 0]


def test_stop_words_are_removed_before_the_ngrams_are_built():
    analyzer = Analyzer("word", (1, 2), stop_words=frozenset({"the", "on"}))
    indexed, plain = features(analyzer)
    assert "vote budget" in indexed.terms
    assert occurrences(*indexed.index.find(map(analyzer.tokens, TEXTS), len(TEXTS))) == occurrences(*plain._lookup(TEXTS))


def test_no_index_where_it_could_be_wrong():
    assert WordIndex.build(["ab", "abc"], Analyzer("char_wb", (2, 3), token_pattern=None)) is None
    assert WordIndex.build(["a,b"], Analyzer("word", (1, 1), token_pattern=r"[^ ]+")) is None  # tokens could hold spaces
    assert WordIndex.build(["the cup final"], Analyzer("word", (1, 2))) is None  # a 3-gram in a (1, 2) vocabulary
    many = [f"w{i:04d}" for i in range(300)]  # 301^8 > 2^63: 8-gram keys would overflow
    assert WordIndex.build(many, Analyzer("word", (1, 8))) is None
    assert WordIndex.build(many, Analyzer("word", (1, 7))) is not None


def test_a_stored_index_that_does_not_map_onto_the_columns_is_refused():
    analyzer = Analyzer("word", (1, 2))
    indexed, _ = features(analyzer)
    model = CompactModel((indexed,), np.ones((indexed.size, 2)), np.zeros(2), "softmax")
    data = compact.dumps({"topic": model})
    assert compact.loads(data)["topic"].blocks[0].index is not None
    for name, tamper in (("columns", lambda a: np.roll(a, 1) * 0), ("keys", lambda a: a[::-1].copy())):
        arrays = dict(np.load(io.BytesIO(data), allow_pickle=False))
        arrays[f"c0.b0.{name}"] = tamper(arrays[f"c0.b0.{name}"])
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with pytest.raises(CorruptModel):
            compact.loads(buffer.getvalue())
