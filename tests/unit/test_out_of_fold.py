import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from functions.errors import TrainingDataError
from functions.model.classifier import build_pipeline
from functions.model.out_of_fold import MIN_EXAMPLES, fit_with_out_of_fold
from functions.model.validation import ValidationOptions, suspect_entries, validate
from functions.settings import ModelParams, PRESETS

WORDS = {"Fruit": ["apple", "pear", "plum"], "Space": ["rocket", "orbit", "comet"], "Sea": ["wave", "tide", "reef"]}
TEXTS = [f"{WORDS[label][i % 3]} {WORDS[label][(i + 1) % 3]} note {i}" for i in range(40) for label in WORDS]
TARGETS = [(label,) for i in range(40) for label in WORDS]


def test_the_served_pipeline_is_what_a_plain_fit_gives_and_every_example_is_predicted_out_of_fold():
    classifier, oof = fit_with_out_of_fold(TEXTS, TARGETS, False, ModelParams(), 5)
    plain = build_pipeline(ModelParams(), examples=len(TEXTS)).fit(TEXTS, [t[0] for t in TARGETS])
    assert np.allclose(classifier.predict_proba(TEXTS), plain.predict_proba(TEXTS), atol=1e-12)
    assert [name for name, _ in classifier.pipeline.steps] == ["tfidf", "nb", "logreg"]
    assert oof.folds == 5 and oof.probabilities.shape == (120, 3)
    assert np.allclose(oof.probabilities.sum(1), 1.0)
    assert [classifier.classes[i] for i in oof.truth] == [t[0] for t in TARGETS]
    assert (oof.probabilities.argmax(1) == oof.truth).mean() > 0.9


def test_out_of_fold_predictions_come_from_models_that_did_not_see_the_example():
    texts, targets = TEXTS + ["qqq zzz xxx"], TARGETS + [("Fruit",)]  # words no other text has
    classifier, oof = fit_with_out_of_fold(texts, targets, False, PRESETS["tutorial"], 5)
    fruit = classifier.classes.index("Fruit")
    assert classifier.predict_proba(texts[-1:])[0, fruit] > 0.6  # the served model learnt those words
    assert oof.probabilities[-1] == pytest.approx([1 / 3] * 3, abs=0.05)  # its fold's model never saw them


def test_too_few_examples_or_no_folds_give_no_out_of_fold_predictions():
    assert fit_with_out_of_fold(TEXTS[: MIN_EXAMPLES - 1], TARGETS[: MIN_EXAMPLES - 1], False, ModelParams(), 5)[1] is None
    assert fit_with_out_of_fold(TEXTS, TARGETS, False, ModelParams(), 0)[1] is None
    with pytest.raises(TrainingDataError, match="at least 2 different labels"):
        fit_with_out_of_fold(TEXTS, [("Fruit",)] * len(TEXTS), False, ModelParams(), 5)


def test_a_label_with_one_example_is_predicted_without_it_in_its_fold():
    texts, targets = TEXTS + ["lonely meteor"], TARGETS + [("Rare",)]
    classifier, oof = fit_with_out_of_fold(texts, targets, False, ModelParams(), 5)
    assert "Rare" in classifier.classes
    rare = classifier.classes.index("Rare")
    assert oof.probabilities[-1, rare] == 0.0 and oof.probabilities[-1].sum() == pytest.approx(1.0)


def test_validation_reports_quality_calibration_threshold_and_suspects():
    targets = list(TARGETS)
    targets[0] = ("Space",)  # an apple text annotated as Space
    classifier, oof = fit_with_out_of_fold(TEXTS, targets, False, ModelParams(), 5)
    calibration, report = validate(oof, classifier.classes, False, ValidationOptions(target=0.9))
    quality = report["quality"]
    assert quality["validated_on"] == 120 and quality["folds"] == 5
    assert sum(map(sum, quality["confusion"]["matrix"])) == 120 and quality["confusion"]["labels"] == classifier.classes
    assert quality["calibration"]["method"] == "top_label_platt" and calibration.kind == "top_label"
    assert len(quality["calibration"]["reliability"]) == quality["calibration"]["bins"] == 15
    assert sum(b["count"] for b in quality["calibration"]["reliability"]) == 120
    assert report["auto_label"]["target"] == 0.9 and report["auto_label"]["validated_on"] == 120
    ids = list(range(1000, 1120))
    suspects = suspect_entries(oof, classifier.classes, False, TEXTS, ids, 5)
    assert suspects["suspects"][0]["task"] == 1000
    assert suspects["suspects"][0] | {"confidence": 0, "given_probability": 0} == {
        "task": 1000, "given": "Space", "suggested": "Fruit", "confidence": 0, "given_probability": 0, "text": TEXTS[0],
    }


def test_multiple_choice_validation_uses_exact_match_and_per_label_calibration():
    texts = [t + (" shiny" if i % 3 == 0 else "") for i, t in enumerate(TEXTS)]
    targets = [t + (("Shiny",) if i % 3 == 0 else ()) for i, t in enumerate(TARGETS)]
    classifier, oof = fit_with_out_of_fold(texts, targets, True, ModelParams(), 5)
    assert oof.truth.shape == (120, 4) and classifier.classes == ["Fruit", "Sea", "Shiny", "Space"]
    calibration, report = validate(oof, classifier.classes, True, ValidationOptions())
    served = report["quality"]["calibration"]
    assert served["ece"] <= served["ece_before"]  # served only if it helps; here the raw scores were already good
    assert (calibration is None) == (served["method"] is None) and (calibration is None or calibration.kind == "per_label")
    assert set(report["quality"]) >= {"micro_f1", "macro_f1", "exact_match"} and "confusion" not in report["quality"]
    assert report["quality"]["micro_f1"] > 0.8


def test_no_out_of_fold_predictions_means_no_threshold_and_a_note():
    calibration, report = validate(None, ["a", "b"], False, ValidationOptions())
    assert calibration is None and report["auto_label"]["threshold"] is None
    assert "not cross-validated" in report["quality"]["note"] and "not cross-validated" in report["auto_label"]["note"]


def test_multiple_choice_suspects_name_the_labels():
    texts = [t + (" shiny" if i % 3 == 0 else "") for i, t in enumerate(TEXTS)]
    targets = [t + (("Shiny",) if i % 3 == 0 else ()) for i, t in enumerate(TARGETS)]
    targets[4] = ("Shiny", "Space")  # a Space text without " shiny" annotated Shiny too
    classifier, oof = fit_with_out_of_fold(texts, targets, True, ModelParams(), 5)
    entries = suspect_entries(oof, classifier.classes, True, texts, list(range(120)), 3)
    assert entries["suspects_found"] >= 1 and len(entries["suspects"]) <= 3
    first = next(s for s in entries["suspects"] if s["task"] == 4)
    assert first["given"] == ["Shiny", "Space"] and first["suggested"] == ["Space"] and first["text"] == texts[4]


def test_a_calibration_that_does_not_lower_the_error_is_not_served(monkeypatch):
    import functions.model.validation as validation
    from functions.model.calibration import Calibration

    classifier, oof = fit_with_out_of_fold(TEXTS, TARGETS, False, ModelParams(), 5)
    flattening = Calibration("top_label", np.array([0.05]), np.array([0.0]))  # squeezes every score towards 1/2
    monkeypatch.setattr(validation, "fit_top_label", lambda probabilities, truth: flattening)
    calibration, report = validate(oof, classifier.classes, False, ValidationOptions())
    served = report["quality"]["calibration"]
    assert calibration is None and served["method"] is None and "not served" in served["note"]
    assert served["ece"] == served["ece_before"]
    monkeypatch.undo()
    calibration, report = validate(oof, classifier.classes, False, ValidationOptions())
    assert calibration is not None and "note" not in report["quality"]["calibration"]
