"""The compact serving model reproduces scikit-learn's pipelines (max |Δp| ≤ 1e-9), loads
without executing anything, and refuses what it cannot reproduce or read."""

import io
import pickle

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import MaxAbsScaler, Normalizer

from functions.errors import ArtifactMismatch, CorruptModel
from functions.model import compact
from functions.model.classifier import ModelParams, fit, fit_multilabel
from functions.model.export import UnsupportedPipeline, check_agreement, to_compact

TEXTS = [
    "The striker scored twice as the league leaders won the cup match",
    "Parliament passed the election law after a long vote by ministers",
    "Heavy rain and strong wind expected, the storm forecast warns",
    "New phone chips make laptops faster, the technology firm said",
    "Goalkeeper saves penalty; the match ends in a draw",
    "The minister resigned before the vote on the budget",
    "Snow and ice: the weather service issues a warning for the weekend",
    "Software update fixes a security bug in the browser",
]
LABELS = ["Sport", "Politics", "Weather", "Technology"] * 2
ODD_TEXTS = ["", "   ", "a", "Ünïcödé ÀÉÎ façade naïve\n\ncafé", "x\ty\nz  w", "12 345 6789", "Sport sport SPORT", "日本語のテキスト 東京"]


def assert_same(pipeline, texts):
    model = compact.loads(compact.dumps({"topic": to_compact(pipeline)}))["topic"]
    assert check_agreement(pipeline, model, texts) <= 1e-9
    return model


@pytest.mark.parametrize(
    "vectorizer",
    [
        TfidfVectorizer(ngram_range=(1, 3)),
        TfidfVectorizer(ngram_range=(2, 3), sublinear_tf=True, stop_words="english", strip_accents="unicode"),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=False, strip_accents="ascii"),
        TfidfVectorizer(analyzer="char", ngram_range=(1, 4), binary=True, norm="l1", use_idf=False),
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, norm=None),
        TfidfVectorizer(token_pattern=r"(?u)\b(\w+)\b", max_features=40),
    ],
    ids=["tutorial", "sublinear-stopwords-accents", "char_wb", "char-binary-l1-noidf", "min_df-max_df-nonorm", "one-group-pattern"],
)
def test_every_vectorizer_setting_is_reproduced(vectorizer):
    pipeline = make_pipeline(vectorizer, LogisticRegression(C=10)).fit(TEXTS * 2, LABELS * 2)
    assert_same(pipeline, TEXTS + ODD_TEXTS)


def test_a_word_and_char_union_with_weights_and_scaling_is_folded_into_the_coefficients():
    union = FeatureUnion(
        [("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)), ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5)))],
        transformer_weights={"chars": 0.5},
    )
    pipeline = Pipeline([("features", union), ("scale", MaxAbsScaler()), ("logreg", LogisticRegression(C=10))]).fit(TEXTS, LABELS)
    model = assert_same(pipeline, TEXTS + ODD_TEXTS)
    assert [block.analyzer.kind for block in model.blocks] == ["word", "char_wb"]


def test_binary_and_multilabel_models_of_the_trainer_are_reproduced():
    binary = fit(TEXTS, ["Sport", "Other"] * 4, ModelParams())
    assert to_compact(binary.pipeline).output == "binary"
    assert_same(binary.pipeline, TEXTS + ODD_TEXTS)
    targets = [("Sport",), ("Politics", "Sport"), ("Weather",), ("Politics",), ("Sport", "Weather"), ("Politics",), ("Weather",), ("Sport",)]
    multilabel = fit_multilabel(TEXTS, targets, ModelParams())
    assert to_compact(multilabel.pipeline).output == "sigmoid"
    assert_same(multilabel.pipeline, TEXTS + ODD_TEXTS)


def test_a_label_every_multilabel_example_has_is_a_constant_probability_of_one():
    targets = [("News", label) for label in LABELS]
    multilabel = fit_multilabel(TEXTS, targets, ModelParams())
    model = assert_same(multilabel.pipeline, TEXTS + ODD_TEXTS)
    assert np.all(model.predict_proba(ODD_TEXTS)[:, multilabel.classes.index("News")] == 1.0)


@pytest.mark.parametrize("name", ["ag_news", "bbc_news", "sms_spam"])
def test_the_trainers_pipeline_on_the_shared_data_sets_is_reproduced(name):
    from tests.conftest import dataset, gold_label

    train, test = dataset(name, "labeled_train")[:600], dataset(name, "labeled_test")[:300]
    classifier = fit([t["data"]["text"] for t in train], [gold_label(t) for t in train], ModelParams())
    assert_same(classifier.pipeline, [t["data"]["text"] for t in test])


def test_unsupported_steps_are_refused_with_the_reason():
    pipeline = make_pipeline(TfidfVectorizer(), Normalizer(), LogisticRegression()).fit(TEXTS, LABELS)
    with pytest.raises(UnsupportedPipeline, match="Normalizer"):
        to_compact(pipeline)
    callable_analyzer = make_pipeline(TfidfVectorizer(analyzer=str.split), LogisticRegression()).fit(TEXTS, LABELS)
    with pytest.raises(UnsupportedPipeline, match="callable"):
        to_compact(callable_analyzer)


def test_a_compact_model_that_differs_from_its_pipeline_is_refused():
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)
    model = to_compact(pipeline)
    altered = compact.CompactModel(model.blocks, model.coef * 1.001, model.intercept, model.output)
    with pytest.raises(ArtifactMismatch, match="differs from the pipeline"):
        check_agreement(pipeline, altered, TEXTS)


def test_the_artifact_holds_arrays_and_json_only_and_loads_with_pickles_refused():
    pipeline = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(TEXTS, LABELS)
    data = compact.dumps({"topic": to_compact(pipeline), "sentiment": to_compact(pipeline)})
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        assert all(archive[name].dtype != object for name in archive.files)
    assert list(compact.loads(data)) == ["topic", "sentiment"]

    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('executed')",))

    evil = io.BytesIO()
    np.savez(evil, header=np.array([Boom()], dtype=object))
    with pytest.raises(CorruptModel, match="cannot be read"):
        compact.loads(evil.getvalue())
    for garbage in (b"", b"not a zip", pickle.dumps({"topic": pipeline}), data[: len(data) // 2]):
        with pytest.raises(CorruptModel):
            compact.loads(garbage)
