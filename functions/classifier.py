"""The text classifier: TF-IDF word n-grams + logistic regression. No I/O happens here.

Importing this module imports scikit-learn (~1 s): only the training path and the first
/predict of a process import it, never /health or /setup.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from functions.errors import TrainingDataError
from functions.settings import ModelParams

__all__ = ["ModelParams", "TextClassifier", "build_pipeline", "fit", "fit_on_label_names"]


class TextClassifier:
    """A fitted single-label pipeline and its classes.

    `classes` comes from the fitted model (``LogisticRegression.classes_``), the one source of
    truth for the column order of `predict_proba`; it is stored beside the model as labels.json.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.classes: list[str] = [str(c) for c in pipeline.classes_]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, shape (len(texts), len(classes)), rows summing to 1."""
        return self.pipeline.predict_proba(list(texts))


def build_pipeline(params: ModelParams) -> Pipeline:
    """An unfitted ``TfidfVectorizer(ngram_range=(1, n)) → LogisticRegression(C)`` pipeline."""
    return Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, params.ngram_max), min_df=params.min_df)),
            ("logreg", LogisticRegression(C=params.c, max_iter=params.max_iter)),
        ]
    )


def fit(texts: Sequence[str], labels: Sequence[str], params: ModelParams) -> TextClassifier:
    """Fit a classifier on `texts` (n_samples strings) labelled `labels` (n_samples strings).

    Raises:
        TrainingDataError: fewer than 2 distinct labels, or `min_df` leaves no vocabulary.
    """
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        found = f"only {distinct[0]!r}" if distinct else "none"
        raise TrainingDataError(
            f"training needs annotated tasks of at least 2 different labels, found {found} "
            f"in {len(labels)} usable task(s); annotate tasks of another label and train again"
        )
    pipeline = build_pipeline(params)
    try:
        pipeline.fit(list(texts), list(labels))
    except ValueError as error:
        if "vocabulary" in str(error):
            raise TrainingDataError(f"the texts give no usable words ({error}); lower TFIDF_MIN_DF") from error
        raise
    return TextClassifier(pipeline)


def fit_on_label_names(labels: Sequence[str], params: ModelParams) -> TextClassifier:
    """The original tutorial's "cold start": a model fitted on the label names themselves.

    Its predictions are close to uniform guesses; it exists only behind the COLD_START setting.
    """
    return fit(list(labels), list(labels), ModelParams(ngram_max=1, c=params.c, max_iter=params.max_iter))
