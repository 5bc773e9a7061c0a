"""The text classifiers: TF-IDF word n-grams (+ Naive-Bayes feature weights) + logistic regression.
No I/O happens here.

Single-label controls use one multinomial logistic regression; multi-label controls
(``choice="multiple"``) one binary logistic regression per label (one-vs-rest). Importing
this module imports scikit-learn (~1 s): only training does; serving uses the compact models
of `functions.model.compact`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MultiLabelBinarizer

from functions.errors import TrainingDataError
from functions.model.nb_weights import NBFeatureWeights
from functions.settings import ModelParams

__all__ = ["ModelParams", "TextClassifier", "build_pipeline", "fit", "fit_multilabel", "require_two_labels"]


class TextClassifier:
    """A fitted pipeline and its classes, in the column order of `predict_proba`.

    For single-label models the classes come from the fitted model (``classes_``); for
    multi-label ones from the label binarizer. They are stored beside the model (labels.json).
    """

    def __init__(self, pipeline: Pipeline, classes: Sequence[str], multilabel: bool = False) -> None:
        self.pipeline = pipeline
        self.classes = [str(c) for c in classes]
        self.multilabel = multilabel

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), len(classes)). Rows sum to 1 for single-label models; multi-label
        columns are independent probabilities."""
        return self.pipeline.predict_proba(list(texts))


MIN_DF_FROM = 50  # examples; below, min_df is 1: a tiny project would lose most of its words


def build_pipeline(params: ModelParams, multilabel: bool = False, examples: int = MIN_DF_FROM) -> Pipeline:
    """An unfitted ``TfidfVectorizer(ngram_range=(1, n)) [→ NBFeatureWeights] → LogisticRegression(C)``
    pipeline for `examples` training texts (min_df applies from `MIN_DF_FROM` examples up)."""
    logreg = LogisticRegression(
        C=params.c, max_iter=params.max_iter, solver=params.solver, tol=params.tol, class_weight=params.class_weight
    )
    vectorizer = TfidfVectorizer(
        ngram_range=(1, params.ngram_max), min_df=params.min_df if examples >= MIN_DF_FROM else 1, sublinear_tf=params.sublinear_tf
    )
    steps: list[tuple[str, object]] = [("tfidf", vectorizer)]
    if params.nb_weights:
        steps.append(("nb", NBFeatureWeights()))
    steps.append(("logreg", OneVsRestClassifier(logreg) if multilabel else logreg))
    return Pipeline(steps)


def fit(texts: Sequence[str], labels: Sequence[str], params: ModelParams) -> TextClassifier:
    """Fit a single-label classifier on `texts` (n_samples strings) labelled `labels` (n_samples).

    Raises:
        TrainingDataError: fewer than 2 distinct labels, or `min_df` leaves no vocabulary.
    """
    require_two_labels(labels, len(labels))
    pipeline = _fit(build_pipeline(params, examples=len(texts)), texts, list(labels))
    return TextClassifier(pipeline, pipeline.classes_)


def fit_multilabel(texts: Sequence[str], targets: Sequence[Sequence[str]], params: ModelParams) -> TextClassifier:
    """Fit a one-vs-rest classifier; ``targets[i]`` is the tuple of labels of ``texts[i]``.

    Raises:
        TrainingDataError: fewer than 2 distinct labels overall, or no vocabulary.
    """
    labels = sorted({label for target in targets for label in target})
    require_two_labels(labels, len(targets))
    binarizer = MultiLabelBinarizer(classes=labels)
    matrix = binarizer.fit_transform(targets)
    pipeline = _fit(build_pipeline(params, multilabel=True, examples=len(texts)), texts, matrix)
    return TextClassifier(pipeline, labels, multilabel=True)


def require_two_labels(labels: Sequence[str], examples: int) -> None:
    """Raise TrainingDataError unless `labels` (of `examples` tasks) hold 2 distinct values."""
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        found = f"only {distinct[0]!r}" if distinct else "none"
        raise TrainingDataError(
            f"training needs annotated tasks of at least 2 different labels, found {found} "
            f"in {examples} usable task(s); annotate tasks of another label and train again"
        )


def _fit(pipeline: Pipeline, texts: Sequence[str], y: object) -> Pipeline:
    try:
        return pipeline.fit(list(texts), y)
    except ValueError as error:
        if "vocabulary" in str(error):
            raise TrainingDataError(f"the texts give no usable words ({error}); lower TFIDF_MIN_DF") from error
        raise
