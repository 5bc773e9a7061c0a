"""Fitted scikit-learn pipeline → `CompactModel`, and the check that both predict the same.

Train side only (it reads scikit-learn estimators). Supported pipelines, which cover every
pipeline `functions.model.classifier` builds:

- features: a `TfidfVectorizer` (word, char or char_wb analyzer, no callables), or a
  `FeatureUnion` of them (with `transformer_weights`);
- then any number of per-feature scalings: `MaxAbsScaler`, `StandardScaler(with_mean=False)`,
  or a step with a ``feature_weights_`` array (x · weights), all folded into the coefficients;
- then `LogisticRegression` (binary or multinomial) or a multi-label `OneVsRestClassifier`
  of them (constant labels included).

Anything else raises `UnsupportedPipeline`; publishing then refuses the version.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import MaxAbsScaler, StandardScaler

from functions.errors import ArtifactMismatch
from functions.model.analyzers import Analyzer
from functions.model.compact import CompactModel, FeatureBlock
from functions.model.word_index import WordIndex

TOLERANCE = 1e-9  # max |Δp| allowed between the pipeline and its compact model


class UnsupportedPipeline(ArtifactMismatch):
    """The pipeline has a step the compact model cannot reproduce."""


def to_compact(pipeline: Pipeline) -> CompactModel:
    """The compact model of a fitted `pipeline` (see the module docstring for what is supported).

    Raises:
        UnsupportedPipeline: a step is not supported.
    """
    steps = [step for _, step in pipeline.steps if step not in (None, "passthrough")]
    if len(steps) < 2:
        raise UnsupportedPipeline(f"expected features → classifier, found {len(steps)} step(s)")
    blocks, weights = _features(steps[0])
    for scaling in steps[1:-1]:
        weights = weights * _feature_scaling(scaling, len(weights))
    coef, intercept, output = _linear(steps[-1], len(weights))
    idf = np.concatenate([block.idf if block.idf is not None else np.ones(block.size) for block in blocks])
    return CompactModel(tuple(blocks), np.ascontiguousarray(coef * (weights * idf)[:, None]), intercept, output)


def check_agreement(pipeline: Pipeline, compact: CompactModel, texts: Sequence[str], tolerance: float = TOLERANCE) -> float:
    """Max |Δp| between `pipeline.predict_proba` and `compact.uncalibrated_proba` on `texts` (the
    calibration is fitted afterwards, on out-of-fold predictions, and is not part of the pipeline).

    Raises:
        ArtifactMismatch: the difference exceeds `tolerance`, or the shapes differ.
    """
    texts = list(texts)
    expected, found = pipeline.predict_proba(texts), compact.uncalibrated_proba(texts)
    if expected.shape != found.shape:
        raise ArtifactMismatch(f"the compact model gives {found.shape} probabilities, the pipeline {expected.shape}")
    difference = float(np.max(np.abs(expected - found), initial=0.0))
    if not difference <= tolerance:
        raise ArtifactMismatch(f"the compact model differs from the pipeline by {difference:.3g} (allowed {tolerance:g})")
    return difference


def _features(step: Any) -> tuple[list[FeatureBlock], np.ndarray]:
    if isinstance(step, TfidfVectorizer):
        block = _block(step)
        return [block], np.ones(block.size)
    if isinstance(step, FeatureUnion):
        blocks, weights = [], []
        for name, part in step.transformer_list:
            if part in (None, "drop"):
                continue
            block = _block(part)
            blocks.append(block)
            weights.append(np.full(block.size, (step.transformer_weights or {}).get(name, 1.0), dtype=np.float64))
        if not blocks:
            raise UnsupportedPipeline("the feature union has no vectorizer")
        return blocks, np.concatenate(weights)
    raise UnsupportedPipeline(f"unsupported feature step {type(step).__name__}")


def _block(vectorizer: Any) -> FeatureBlock:
    if not isinstance(vectorizer, TfidfVectorizer):
        raise UnsupportedPipeline(f"unsupported vectorizer {type(vectorizer).__name__}")
    if callable(vectorizer.analyzer) or vectorizer.preprocessor is not None or vectorizer.tokenizer is not None:
        raise UnsupportedPipeline("vectorizers with a callable analyzer, preprocessor or tokenizer cannot be compacted")
    if vectorizer.input != "content" or np.dtype(vectorizer.dtype) != np.float64 or not isinstance(vectorizer.strip_accents, (str, type(None))):
        raise UnsupportedPipeline("only float64 vectorizers of text content with named accent stripping are supported")
    stop_words = vectorizer.get_stop_words() if vectorizer.analyzer == "word" else None
    analyzer = Analyzer(
        vectorizer.analyzer, tuple(vectorizer.ngram_range), bool(vectorizer.lowercase), vectorizer.strip_accents,
        vectorizer.token_pattern if vectorizer.analyzer == "word" else None,
        frozenset(stop_words) if stop_words else None,
    )
    idf = np.asarray(vectorizer.idf_, dtype=np.float64) if vectorizer.use_idf else None
    terms = [str(term) for term in vectorizer.get_feature_names_out()]
    return FeatureBlock(
        analyzer, terms, idf, bool(vectorizer.sublinear_tf), bool(vectorizer.binary), vectorizer.norm,
        WordIndex.build(terms, analyzer),
    )


def _feature_scaling(step: Any, features: int) -> np.ndarray:
    if isinstance(step, (MaxAbsScaler, StandardScaler)):
        if isinstance(step, StandardScaler) and step.with_mean:
            raise UnsupportedPipeline("StandardScaler(with_mean=True) would make the features dense")
        scale = step.scale_ if step.scale_ is not None else np.ones(features)
        return 1.0 / np.asarray(scale, dtype=np.float64)
    weights = getattr(step, "feature_weights_", None)
    if weights is None or np.shape(weights) != (features,):
        raise UnsupportedPipeline(f"unsupported step {type(step).__name__} between the features and the classifier")
    return np.asarray(weights, dtype=np.float64)


def _linear(step: Any, features: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(coef (features, outputs), intercept (outputs,), output function)."""
    if isinstance(step, LogisticRegression):
        coef, intercept = _logistic(step, features)
        return coef, intercept, "binary" if len(step.classes_) == 2 else "softmax"
    if isinstance(step, OneVsRestClassifier) and getattr(step, "multilabel_", False):
        columns = [_one_label(estimator, features) for estimator in step.estimators_]
        return np.hstack([c for c, _ in columns]), np.concatenate([i for _, i in columns]), "sigmoid"
    raise UnsupportedPipeline(f"unsupported classifier {type(step).__name__}")


def _one_label(estimator: Any, features: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(estimator, LogisticRegression) and len(estimator.classes_) == 2:
        return _logistic(estimator, features)
    constant = getattr(estimator, "y_", None)  # scikit-learn's _ConstantPredictor: a label always (never) present
    if constant is not None and np.size(constant) == 1:
        return np.zeros((features, 1)), np.array([np.inf if float(np.ravel(constant)[0]) >= 0.5 else -np.inf])
    raise UnsupportedPipeline(f"unsupported one-vs-rest estimator {type(estimator).__name__}")


def _logistic(model: LogisticRegression, features: int) -> tuple[np.ndarray, np.ndarray]:
    coef = np.asarray(model.coef_, dtype=np.float64)
    if coef.shape[1] != features:
        raise UnsupportedPipeline(f"the classifier has {coef.shape[1]} inputs for {features} features")
    intercept = np.asarray(model.intercept_, dtype=np.float64).reshape(-1)
    if intercept.shape != (coef.shape[0],):
        intercept = np.zeros(coef.shape[0])  # fit_intercept=False
    return coef.T, intercept
