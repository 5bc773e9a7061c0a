"""The original tutorial's "cold start" with NumPy only: before any training, a TF-IDF +
logistic regression model fitted on the label names themselves (COLD_START=true).

The tutorial fits ``TfidfVectorizer → LogisticRegression(C)`` on ``X = labels``, one example
per label. Here the same model (word unigrams, smooth idf, l2 norm; L2-penalised logistic
loss ``½‖w‖² + C Σ loss``, intercept not penalised; binary for two labels, multinomial
otherwise) is fitted by accelerated gradient descent, because the api function has no
scikit-learn. The problem is tiny (labels × words), and the optimum is the one scikit-learn
converges to; its predictions are close to uniform guesses by design.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from functions.model.analyzers import Analyzer
from functions.model.compact import CompactModel, FeatureBlock
from functions.model.word_index import WordIndex

MAX_STEPS = 5000
GRADIENT_TOLERANCE = 1e-9


def label_name_model(labels: Sequence[str], c: float) -> CompactModel | None:
    """A model whose class i is ``labels[i]``; None if the names hold no word of 2+ characters
    (scikit-learn would refuse the empty vocabulary) or there are fewer than 2 labels."""
    analyzer = Analyzer("word", (1, 1))
    documents = [analyzer(label) for label in labels]
    terms = sorted({term for document in documents for term in document})
    if len(labels) < 2 or not terms:
        return None
    vocabulary = {term: column for column, term in enumerate(terms)}
    counts = np.zeros((len(labels), len(terms)))
    for row, document in enumerate(documents):
        for term in document:
            counts[row, vocabulary[term]] += 1
    idf = np.log((1 + len(labels)) / (1 + (counts > 0).sum(axis=0))) + 1
    x = counts * idf
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    binary = len(labels) == 2
    targets = np.array([[0.0], [1.0]]) if binary else np.eye(len(labels))
    coef, intercept = _fit(x, targets, c, binary)
    block = FeatureBlock(analyzer, terms, idf, index=WordIndex.build(terms, analyzer))
    return CompactModel((block,), np.ascontiguousarray(coef * idf[:, None]), intercept, "binary" if binary else "softmax")


def _fit(x: np.ndarray, targets: np.ndarray, c: float, binary: bool) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ½‖W‖² + C Σ_i loss_i over W (features, outputs) and b (outputs,), by Nesterov's
    accelerated gradient with step 1/L (L bounds the curvature: rows of x have norm ≤ 1)."""
    outputs = targets.shape[1]
    params = np.zeros((x.shape[1] + 1, outputs))
    design = np.hstack([x, np.ones((len(x), 1))])
    step = 1.0 / (c * (np.square(design).sum()) + 1.0)
    previous, momentum = params.copy(), params.copy()
    for k in range(1, MAX_STEPS + 1):
        gradient = _gradient(momentum, design, targets, c, binary)
        if np.max(np.abs(gradient)) < GRADIENT_TOLERANCE:
            params = momentum
            break
        params = momentum - step * gradient
        momentum = params + (k - 1) / (k + 2) * (params - previous)
        previous = params
    return params[:-1], params[-1]


def _gradient(params: np.ndarray, design: np.ndarray, targets: np.ndarray, c: float, binary: bool) -> np.ndarray:
    decisions = design @ params
    if binary:
        predicted = 1.0 / (1.0 + np.exp(-decisions))
    else:
        decisions -= decisions.max(axis=1, keepdims=True)
        predicted = np.exp(decisions)
        predicted /= predicted.sum(axis=1, keepdims=True)
    gradient = c * design.T @ (predicted - targets)
    gradient[:-1] += params[:-1]  # the intercept (last row) is not penalised
    return gradient
