"""Word n-grams found as integers: the fast way a `FeatureBlock` finds a batch's columns.

Looking up every n-gram string of a text in a dict of a few hundred thousand terms costs a
cache miss or two per n-gram; that was most of a 1,000-task /predict (py-spy). Here only the
tokens are looked up, in a dict of the vocabulary's distinct tokens (AG News: 18,503 tokens
for 300,652 terms). An n-gram is then the integer whose base-B digits are its token ids
(ids 1..T, B = T + 1), and a whole batch's n-grams are found among the vocabulary's sorted
keys by one `np.searchsorted`.

Why no key means two n-grams: an n-gram's key lies in [B^(n-1), B^n), so lengths never share a
key. An unknown token has id 0; a window it leads would read as a shorter n-gram, so such
windows are dropped, and a 0 digit elsewhere matches no vocabulary key (no vocabulary token
has id 0). Keys stay below B^max_n < 2^63 (checked when the index is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Iterable, Mapping, Sequence

import numpy as np

from functions.model.analyzers import Analyzer

# Token patterns that never match whitespace, so that a term split on " " gives its tokens
# back (scikit-learn joins word n-grams with one space).
SPACE_FREE_PATTERNS = frozenset({r"(?u)\b\w\w+\b", r"\b\w\w+\b", r"(?u)\b\w+\b", r"\b\w+\b"})
MAX_KEY = 2**63 - 1


@dataclass(frozen=True)
class WordIndex:
    """The vocabulary of a word analyzer as integer keys.

    Attributes:
        token_ids: token → id (1..T).
        keys: (n_terms,) int64, sorted: each term's key.
        columns: (n_terms,) int64: the term's column, for each key.
        ngram_range: the analyzer's (min_n, max_n).
    """

    token_ids: Mapping[str, int]
    keys: np.ndarray
    columns: np.ndarray
    ngram_range: tuple[int, int]

    def __post_init__(self) -> None:
        if self.keys.shape != self.columns.shape or self.keys.dtype != np.int64 or self.columns.dtype != np.int64:
            raise ValueError("an index needs int64 keys and columns of one length")
        if len(self.keys) > 1 and not np.all(self.keys[1:] > self.keys[:-1]):
            raise ValueError("an index's keys must be sorted and distinct")
        if self.base ** self.ngram_range[1] > MAX_KEY:
            raise ValueError(f"{len(self.token_ids)} tokens make {self.ngram_range[1]}-gram keys overflow int64")

    @property
    def base(self) -> int:
        """B: one more than the number of tokens."""
        return len(self.token_ids) + 1

    @classmethod
    def build(cls, terms: Sequence[str], analyzer: Analyzer) -> WordIndex | None:
        """The index of `terms` (the vocabulary in column order), or None where it cannot work:
        not a word analyzer with a pattern of SPACE_FREE_PATTERNS, a term that is not
        min_n..max_n tokens, or keys that would not fit int64."""
        low, high = analyzer.ngram_range
        if analyzer.kind != "word" or analyzer.token_pattern not in SPACE_FREE_PATTERNS:
            return None
        token_ids: dict[str, int] = {}
        split = [term.split(" ") for term in terms]
        for tokens in split:
            if not low <= len(tokens) <= high or "" in tokens:
                return None
            for token in tokens:
                token_ids.setdefault(token, len(token_ids) + 1)
        base = len(token_ids) + 1
        if base**high > MAX_KEY:
            return None
        keys = np.zeros(len(terms), dtype=np.int64)
        for position in range(high):  # digit by digit, most significant first, for all terms at once
            digits = np.fromiter((token_ids[t[position]] if position < len(t) else -1 for t in split), np.int64, len(split))
            present = digits >= 0
            keys[present] = keys[present] * base + digits[present]
        order = np.argsort(keys, kind="stable")
        return cls(token_ids, keys[order], order.astype(np.int64), (low, high))

    def find(self, token_lists: Iterable[Sequence[str]], n_texts: int) -> tuple[np.ndarray, np.ndarray]:
        """The vocabulary n-grams in each text's tokens: (rows, columns), one entry per occurrence.

        `token_lists` gives the tokens of each of `n_texts` texts, in order (stop words removed).
        """
        get = self.token_ids.get
        ids: list[int] = []
        lengths = np.empty(n_texts, dtype=np.int64)
        for row, tokens in enumerate(token_lists):
            ids.extend(map(get, tokens, repeat(0)))
            lengths[row] = len(tokens)
        token_ids = np.fromiter(ids, dtype=np.int64, count=len(ids))
        if not len(token_ids) or not len(self.keys):
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        rows = np.repeat(np.arange(n_texts, dtype=np.int64), lengths)
        room = np.cumsum(lengths)[rows] - np.arange(len(token_ids))  # tokens left in the text, from here
        starts = token_ids != 0
        low, high = self.ngram_range
        keys, key_rows = [], []
        window = token_ids
        for n in range(1, high + 1):
            if n > 1:
                window = window[:-1] * self.base + token_ids[n - 1 :]  # keys of the n-token windows
            if n >= low:
                valid = starts[: len(window)] & (room[: len(window)] >= n)
                keys.append(window[valid])
                key_rows.append(rows[: len(window)][valid])
        wanted = np.concatenate(keys)
        positions = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        hit = self.keys[positions] == wanted
        return np.concatenate(key_rows)[hit], self.columns[positions[hit]]
