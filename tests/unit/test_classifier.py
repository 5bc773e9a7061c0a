import numpy as np
import pytest

from functions.model.classifier import ModelParams, fit
from functions.errors import TrainingDataError

TEXTS = ["cheap pills buy now", "win money now", "lunch at noon?", "see you at the meeting", "free prize claim now", "call me later"]
LABELS = ["Spam", "Spam", "Ham", "Ham", "Spam", "Ham"]


def test_fit_learns_string_labels_and_reports_class_order():
    model = fit(TEXTS, LABELS, ModelParams())
    assert model.classes == ["Ham", "Spam"]
    proba = model.predict_proba(["buy cheap pills now", "meeting at noon"])
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert proba[0, 1] > 0.5 and proba[1, 0] > 0.5


def test_the_pipeline_is_tfidf_word_ngrams_and_logistic_regression_from_settings():
    model = fit(TEXTS, LABELS, ModelParams(ngram_max=2, c=3.0))
    tfidf, logreg = model.pipeline.named_steps["tfidf"], model.pipeline.named_steps["logreg"]
    assert tfidf.ngram_range == (1, 2) and logreg.C == 3.0 and logreg.solver == "newton-cg" and logreg.tol == 1e-6
    assert "pills buy now" not in tfidf.vocabulary_ and "pills buy" in tfidf.vocabulary_


def test_one_label_is_a_training_data_error_that_says_what_to_do():
    with pytest.raises(TrainingDataError, match=r"at least 2 different labels, found only 'Spam' in 3 usable"):
        fit(TEXTS[:3], ["Spam"] * 3, ModelParams())
    with pytest.raises(TrainingDataError, match="found none"):
        fit([], [], ModelParams())
