import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from functions.model.cold_start import label_name_model

TEXTS = ["the election vote", "rain storm today", "match goal sport", "new phone technology", "nothing here", ""]


@pytest.mark.parametrize("labels", [["Politics", "Technology", "Sport", "Weather"], ["Ham", "Spam"], ["Positive", "Negative", "Neutral news"]])
def test_the_label_name_model_is_the_tutorials_model_without_scikit_learn(labels):
    tutorial = make_pipeline(TfidfVectorizer(), LogisticRegression(C=10, tol=1e-10, max_iter=10_000))
    tutorial.fit(labels, list(range(len(labels))))
    model = label_name_model(labels, c=10.0)
    np.testing.assert_allclose(model.predict_proba(TEXTS), tutorial.predict_proba(TEXTS), atol=1e-6)
    assert labels[int(model.predict_proba([labels[0].lower()]).argmax())] == labels[0]


def test_label_names_without_words_give_no_model():
    assert label_name_model(["A", "B"], c=10.0) is None
    assert label_name_model(["Only"], c=10.0) is None
