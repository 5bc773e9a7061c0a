"""Text → features, exactly as scikit-learn's `TfidfVectorizer` analyses a document, with the
standard library only (the api function has no scikit-learn).

The rules are scikit-learn 1.9's (`sklearn/feature_extraction/text.py`):

- preprocessing: ``str.lower()`` if `lowercase`, then accent stripping (``"ascii"``: NFKD and
  drop what is not ASCII; ``"unicode"``: NFKD and drop combining marks, unless already ASCII);
- ``analyzer="word"``: ``re.findall(token_pattern)``, stop words removed, then word n-grams
  joined by one space;
- ``analyzer="char"``: runs of 2+ whitespace characters become one space, then character
  n-grams of the whole text;
- ``analyzer="char_wb"``: the same whitespace rule, then n-grams of each whitespace-separated
  word padded with one space on each side; a word shorter than n gives its padded self once.

The n-grams come out in another order than scikit-learn's, which does not change the counts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

ANALYZERS = ("word", "char", "char_wb")
ACCENTS = (None, "ascii", "unicode")
_WHITE_SPACES = re.compile(r"\s\s+")


@dataclass(frozen=True)
class Analyzer:
    """The settings of one vectorizer's analysis; calling it gives a document's features.

    Attributes:
        kind: ``"word"``, ``"char"`` or ``"char_wb"``.
        ngram_range: (min_n, max_n), inclusive.
        lowercase: lower-case before tokenising.
        strip_accents: None, ``"ascii"`` or ``"unicode"``.
        token_pattern: the word regex (``analyzer="word"`` only).
        stop_words: words removed before n-grams are built (``analyzer="word"`` only).
    """

    kind: str = "word"
    ngram_range: tuple[int, int] = (1, 1)
    lowercase: bool = True
    strip_accents: str | None = None
    token_pattern: str | None = r"(?u)\b\w\w+\b"
    stop_words: frozenset[str] | None = None

    def __post_init__(self) -> None:
        low, high = self.ngram_range
        if self.kind not in ANALYZERS or self.strip_accents not in ACCENTS or not 1 <= low <= high:
            raise ValueError(f"unsupported analyzer settings: {self}")
        if self.kind == "word" and (self.token_pattern is None or re.compile(self.token_pattern).groups > 1):
            raise ValueError("a word analyzer needs a token pattern with at most one group")

    def __call__(self, text: str) -> list[str]:
        """The features of `text`, with repeats (one per occurrence)."""
        if self.kind == "word":
            return self._word_ngrams(self.tokens(text))
        text = self._preprocess(text)
        text = _WHITE_SPACES.sub(" ", text)
        if self.kind == "char":
            return _char_ngrams(text, *self.ngram_range)
        return [gram for word in text.split() for gram in _padded_word_ngrams(" " + word + " ", *self.ngram_range)]

    def tokens(self, text: str) -> list[str]:
        """A word analyzer's tokens of `text`, stop words removed: what its n-grams are made of."""
        tokens = self._tokenize(self._preprocess(text))
        if self.stop_words:
            tokens = [token for token in tokens if token not in self.stop_words]
        return tokens

    @cached_property
    def _tokenize(self) -> Callable[[str], list[str]]:
        return re.compile(self.token_pattern or "").findall

    def _preprocess(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.strip_accents == "ascii":
            return unicodedata.normalize("NFKD", text).encode("ASCII", "ignore").decode("ASCII")
        if self.strip_accents == "unicode" and not text.isascii():
            return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
        return text

    def _word_ngrams(self, tokens: list[str]) -> list[str]:
        low, high = self.ngram_range
        grams = list(tokens) if low == 1 else []
        join = " ".join
        for n in range(max(low, 2), high + 1):
            grams.extend(map(join, zip(*(tokens[i:] for i in range(n)))))
        return grams


def _char_ngrams(text: str, low: int, high: int) -> list[str]:
    return [text[i : i + n] for n in range(low, min(high, len(text)) + 1) for i in range(len(text) - n + 1)]


def _padded_word_ngrams(word: str, low: int, high: int) -> list[str]:
    grams = []
    for n in range(low, high + 1):
        if len(word) <= n:  # a short word gives its padded self once, then no longer n-grams
            grams.append(word)
            break
        grams.extend(word[i : i + n] for i in range(len(word) - n + 1))
    return grams
