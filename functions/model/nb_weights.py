"""Naive-Bayes feature weights for the default pipeline: a per-feature scaling between the
TF-IDF features and the logistic regression. Train side only (imports SciPy); the compact
serving model folds the weights into its coefficients (`functions.model.export`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin


class NBFeatureWeights(BaseEstimator, TransformerMixin):
    """Naive-Bayes log-count-ratio feature weights (Wang & Manning 2012, "NBSVM"), one per column.

    Fitted on the TF-IDF matrix X and the labels y: for each class c (one-vs-rest), with
    p = alpha + (number of class-c documents that contain the feature) and q the same over the
    other documents, the ratio is r_c = log((p / ‖p‖₁) / (q / ‖q‖₁)). As in the paper the counts
    are binarized (document frequencies); unlike the paper, the weights then scale the TF-IDF
    values, not binarized features.

    Multi-class generalisation: one weight per feature, the largest one-vs-rest magnitude,
    ``feature_weights_ = max_c |r_c|``, so one multinomial logistic regression still follows. With
    two classes r_1 = −r_0 and this is |r| of the paper; the sign it drops does not matter to a
    linear model whose penalty is symmetric. Multi-label targets (a 0/1 indicator matrix) are
    treated the same way, one column per label.

    `transform` returns ``X · diag(feature_weights_)`` (sparse CSR): a per-feature scaling that
    `functions.model.export.to_compact` folds into the coefficients (the ``feature_weights_``
    step of its docstring), so the compact model serves it exactly. The weights also change the
    effective regularisation per feature (an informative feature costs less), hence a smaller
    C (3) in the pipelines that use it (`functions.settings.PRESETS`).

    Attributes (after fit):
        feature_weights_: (n_features,) float64, ≥ 0.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> "NBFeatureWeights":
        present = sp.csr_matrix(X, dtype=np.float64, copy=True)
        present.data[:] = 1.0
        present.eliminate_zeros()
        y = np.asarray(y)
        members = y.astype(bool).T if y.ndim == 2 else [y == label for label in np.unique(y)]
        weights = np.zeros(present.shape[1])
        for inside in members:
            inside = np.asarray(inside, dtype=bool)
            if inside.all() or not inside.any():
                continue  # a label every document has (or none has) tells nothing
            p = self.alpha + np.asarray(present[inside].sum(axis=0)).ravel()
            q = self.alpha + np.asarray(present[~inside].sum(axis=0)).ravel()
            np.maximum(weights, np.abs(np.log(p / p.sum()) - np.log(q / q.sum())), out=weights)
        self.feature_weights_ = weights
        self.n_features_in_ = present.shape[1]
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        scaled = sp.csr_matrix(X, dtype=np.float64, copy=True)
        scaled.data *= self.feature_weights_[scaled.indices]
        return scaled
