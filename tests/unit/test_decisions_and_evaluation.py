import numpy as np

from functions.model.decisions import decide
from functions.model.evaluation import holdout_metrics
from functions.settings import ModelParams


def test_single_choice_takes_the_most_probable_label():
    assert decide(np.array([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]]), False, 0.5) == [([1], 0.7), ([0], 0.5)]


def test_multiple_choice_lists_labels_at_or_above_the_threshold_most_probable_first():
    rows = np.array([[0.6, 0.9, 0.5, 0.1], [0.2, 0.3, 0.1, 0.05]])
    assert decide(rows, True, 0.5) == [([1, 0, 2], 0.5), ([1], 0.3)]  # 2nd: only the top label, score < threshold


TEXTS = [f"{word} {word} item {i}" for i in range(30) for word in ("apple", "rocket")]
LABELS = [("Fruit",) if "apple" in t else ("Space",) for t in TEXTS]


def test_holdout_is_stratified_and_scored_above_fifty_examples():
    quality = holdout_metrics(TEXTS, LABELS, False, ModelParams(), 0.5)
    assert quality == {"holdout": {"train": 48, "test": 12, "stratified": True}, "accuracy": 1.0, "macro_f1": 1.0}


def test_no_holdout_below_fifty_examples():
    assert holdout_metrics(TEXTS[:49], LABELS[:49], False, ModelParams(), 0.5)["holdout"] is None


def test_multilabel_holdout_reports_micro_and_macro_f1():
    targets = [label + (("Shiny",) if i % 3 == 0 else ()) for i, label in enumerate(LABELS)]
    texts = [t + (" shiny" if i % 3 == 0 else "") for i, t in enumerate(TEXTS)]
    quality = holdout_metrics(texts, targets, True, ModelParams(), 0.5)
    assert set(quality) == {"holdout", "micro_f1", "macro_f1", "exact_match"}
    assert quality["micro_f1"] > 0.8
