"""Confident learning (functions.model.confident_learning) against its reference, cleanlab 2.9
(a dev dependency only): the same flagged set as ``cleanlab.filter.find_label_issues`` with its
default filter (prune_by_noise_rate), the same self-confidence ranking, on synthetic and on real
out-of-fold probabilities; then the edge cases. The one stated difference: ties in
self-confidence are ordered by the suggested class's probability, then index (cleanlab: NumPy's
unstable sort order)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
from cleanlab.filter import find_label_issues as cleanlab_issues
from cleanlab.multilabel_classification.filter import find_label_issues as cleanlab_multilabel_issues

from functions.model.confident_learning import (
    LabelIssue,
    calibrated_confident_joint,
    confident_thresholds,
    find_label_issues,
    find_multilabel_issues,
    issue_mask,
)
from tests.conftest import ROOT


def reference(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's (mask, indices ranked by self-confidence), one process, warnings muted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mask = cleanlab_issues(labels, probabilities, n_jobs=1)
        ranked = cleanlab_issues(labels, probabilities, n_jobs=1, return_indices_ranked_by="self_confidence")
    return mask, ranked


def assert_same_as_cleanlab(labels: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """Same flagged set; same ranking scores in the same order; same order wherever the scores differ."""
    mask, ranked = reference(labels, probabilities)
    issues = find_label_issues(labels, probabilities)
    ours = np.array([issue.index for issue in issues], dtype=int)
    assert np.array_equal(issue_mask(labels, probabilities), mask)
    assert set(ours.tolist()) == set(ranked.tolist())
    scores = probabilities[ours, labels[ours]]
    assert np.array_equal(scores, probabilities[ranked, labels[ranked]])  # cleanlab's order of scores, exactly
    steps = np.diff(scores) > 0
    distinct = np.concatenate(([True], steps)) & np.concatenate((steps, [True])) if len(scores) else np.zeros(0, bool)
    assert np.array_equal(ours[distinct], ranked[distinct])  # same example at every untied rank
    return issues


def noisy_synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probabilities around true classes, 0–30 % of labels redrawn; every third seed a class
    the model all but never predicts, every fifth probabilities rounded to 0.01 (zeros and ties)."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(3, 400)), int(rng.integers(2, 7))
    true = rng.integers(0, k, n)
    logits = rng.normal(0, rng.uniform(0.5, 4), (n, k))
    logits[np.arange(n), true] += rng.uniform(0, 4)
    if seed % 3 == 0:
        logits[:, rng.integers(0, k)] -= 50
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    if seed % 5 == 0:
        probabilities = np.round(probabilities, 2)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = true.copy()
    flip = rng.random(n) < rng.uniform(0, 0.3)
    labels[flip] = rng.integers(0, k, flip.sum())
    return labels, probabilities


@pytest.mark.parametrize("seed", range(120))
def test_the_flagged_set_and_ranking_are_cleanlabs_on_synthetic_data(seed):
    labels, probabilities = noisy_synthetic(seed)
    if len(np.unique(labels)) < 2:
        pytest.skip("cleanlab refuses a single class (tested below)")
    assert_same_as_cleanlab(labels, probabilities)


@pytest.fixture(scope="module")
def digits_out_of_fold():
    """Real out-of-fold probabilities: 5-fold logistic regression on scikit-learn's digits (10
    classes, 1797 images) with 8 % of the labels flipped to another class (seeded)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(y), size=round(0.08 * len(y)), replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 10, len(flipped))) % 10
    probabilities = cross_val_predict(LogisticRegression(C=0.01, max_iter=2000), x, noisy, cv=5, method="predict_proba")
    return noisy, probabilities, flipped


def test_the_flagged_set_and_ranking_are_cleanlabs_on_real_out_of_fold_probabilities(digits_out_of_fold):
    labels, probabilities, flipped = digits_out_of_fold
    issues = assert_same_as_cleanlab(labels, probabilities)
    top = [issue.index for issue in issues[: len(flipped)]]
    assert np.isin(top, flipped).mean() >= 0.8  # and it finds the flipped labels


def test_each_issue_names_the_model_choice_and_both_probabilities(digits_out_of_fold):
    labels, probabilities, _ = digits_out_of_fold
    issues = find_label_issues(labels, probabilities)
    assert issues
    for issue in issues:
        row = probabilities[issue.index]
        assert issue.given == labels[issue.index] != issue.suggested == row.argmax()
        assert issue.confidence == row[issue.suggested] and issue.given_probability == row[issue.given]
        assert isinstance(issue.index, int) and isinstance(issue.confidence, float)
    assert [i.given_probability for i in issues] == sorted(i.given_probability for i in issues)


def test_ties_in_self_confidence_go_to_the_more_confident_suggestion_then_the_lower_index():
    labels = np.array([0, 0, 0, 1, 1, 1, 0, 1, 2, 2, 2])
    probabilities = np.array([
        [0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.1, 0.6, 0.3],  # 2: annotated 0, looks like 1 (p0 = 0.1)
        [0.05, 0.9, 0.05], [0.1, 0.8, 0.1], [0.2, 0.1, 0.7],  # 5: annotated 1, looks like 2 (p1 = 0.1)
        [0.1, 0.8, 0.1], [0.8, 0.1, 0.1],  # 6, 7: the same p(given) = 0.1, more confident suggestions
        [0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.05, 0.05, 0.9],
    ])
    issues = find_label_issues(labels, probabilities)
    cleanlab_order = reference(labels, probabilities)[1].tolist()
    assert [i.given_probability for i in issues] == [0.1, 0.1, 0.1]
    assert [i.index for i in issues] == [6, 7, 2]  # suggestions at 0.8, 0.8 (lower index first), 0.6
    assert cleanlab_order == [2, 6, 7]  # the same set; cleanlab leaves the tie in index order here


# Edge cases


def test_a_class_nobody_annotated_is_never_suggested_by_the_confident_joint_but_can_be_by_the_model():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 200)  # class 3 has no examples
    probabilities = rng.dirichlet(np.ones(4) * 0.3, 200)
    probabilities[:, :3] += np.eye(3)[labels] * 2
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels[:10] = (labels[:10] + 1) % 3
    assert confident_thresholds(labels, probabilities)[3] == 2.0  # nobody reaches it
    joint = calibrated_confident_joint(labels, probabilities)
    assert joint[3].sum() == 0 and joint[:, 3].sum() == 0
    assert_same_as_cleanlab(labels, probabilities)


def test_two_classes():
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 2, 300)
    p1 = np.clip(np.where(truth == 1, rng.beta(8, 2, 300), rng.beta(2, 8, 300)), 0, 1)
    probabilities = np.column_stack((1 - p1, p1))
    labels = truth.copy()
    labels[:15] = 1 - labels[:15]
    issues = assert_same_as_cleanlab(labels, probabilities)
    assert issues and all(i.suggested == 1 - i.given for i in issues)
    assert len({i.index for i in issues} & set(range(15))) >= 10


def test_probabilities_with_exact_zeros_and_ones():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    probabilities = np.array([
        [1, 0, 0], [1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 1, 0], [0, 0.8, 0.2],
        [0, 0, 1], [0, 0, 1], [0, 0.1, 0.9], [0, 1, 0],  # the last one: annotated 0, the model says 1 for sure
    ], dtype=float)
    issues = assert_same_as_cleanlab(labels, probabilities)
    assert [(i.index, i.given, i.suggested, i.confidence, i.given_probability) for i in issues] == [(9, 0, 1, 1.0, 0.0)]


def test_fewer_examples_than_classes():
    labels = np.array([0, 3, 3])
    probabilities = np.array([[0.1, 0.1, 0.1, 0.1, 0.6], [0.1, 0.1, 0.1, 0.6, 0.1], [0.7, 0.1, 0.1, 0.05, 0.05]])
    issues = assert_same_as_cleanlab(labels, probabilities)
    assert [(i.index, i.suggested) for i in issues] == [(2, 0)]
    assert find_label_issues(labels[:1], probabilities[:1]) == []  # a class of one example is never pruned


def test_all_examples_correct_means_no_issues():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 500)
    probabilities = rng.dirichlet(np.ones(4), 500)
    probabilities[np.arange(500), labels] += 1.0  # the annotated label is always the model's choice
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    assert find_label_issues(labels, probabilities) == []
    assert not reference(labels, probabilities)[0].any()


def test_degenerate_inputs_give_no_issues():
    assert find_label_issues(np.zeros(0, dtype=int), np.zeros((0, 3))) == []
    assert find_label_issues(np.zeros(4, dtype=int), np.ones((4, 1))) == []  # one class: nothing to suggest
    one_class = np.zeros(6, dtype=int)
    probabilities = np.tile([0.1, 0.9], (6, 1))  # the model disagrees, but nobody annotated class 1
    assert find_label_issues(one_class, probabilities) == []  # cleanlab raises here


@pytest.mark.parametrize(
    ("labels", "probabilities", "message"),
    [
        (np.array([0, 1]), np.array([0.5, 0.5]), "must be"),
        (np.array([0, 1, 1]), np.full((2, 2), 0.5), "must be"),
        (np.array([[0], [1]]), np.full((2, 2), 0.5), "must be"),
        (np.array([0, 2]), np.full((2, 2), 0.5), "class indices"),
        (np.array([0, -1]), np.full((2, 2), 0.5), "class indices"),
        (np.array([0, 0.5]), np.full((2, 2), 0.5), "integer"),
        (np.array([0, 1]), np.array([[0.5, 0.5], [np.nan, 1]]), "finite"),
        (np.array([0, 1]), np.array([[1.5, -0.5], [0, 1]]), "non-negative"),
    ],
)
def test_bad_inputs_raise_value_error(labels, probabilities, message):
    with pytest.raises(ValueError, match=message):
        find_label_issues(labels, probabilities)


# Multiple choice: per-label binary confident learning


def multilabel_synthetic(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(10, 300)), int(rng.integers(2, 6))
    truth = (rng.random((n, m)) < 0.35).astype(int)
    probabilities = 1 / (1 + np.exp(-(rng.normal(0, 1.5, (n, m)) + np.where(truth == 1, 2.0, -2.0))))
    given = truth.copy()
    flip = rng.random((n, m)) < 0.05
    given[flip] = 1 - given[flip]
    return given, probabilities


@pytest.mark.parametrize("seed", range(40))
def test_multilabel_issues_and_ranking_are_cleanlabs(seed):
    given, probabilities = multilabel_synthetic(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lists = [np.flatnonzero(row).tolist() for row in given]
        ranked = cleanlab_multilabel_issues(labels=lists, pred_probs=probabilities, n_jobs=1, return_indices_ranked_by="self_confidence")
    issues = find_multilabel_issues(given, probabilities)
    assert [issue.index for issue in issues] == ranked.tolist()


def test_a_multilabel_issue_flips_the_flagged_labels_and_says_how_sure_the_model_is():
    given, probabilities = multilabel_synthetic(7)
    issues = find_multilabel_issues(given, probabilities)
    assert issues
    for issue in issues:
        row, p = given[issue.index], probabilities[issue.index]
        assert issue.given == tuple(row) and issue.flagged
        assert [c for c in range(len(row)) if issue.suggested[c] != row[c]] == list(issue.flagged)
        flipped_value_probability = [p[c] if row[c] == 0 else 1 - p[c] for c in issue.flagged]
        assert issue.confidence == pytest.approx(min(flipped_value_probability))
    assert [i.quality for i in issues] == sorted(i.quality for i in issues)


def test_multilabel_edge_cases():
    assert find_multilabel_issues(np.zeros((0, 3), dtype=int), np.zeros((0, 3))) == []
    always = np.ones((20, 2), dtype=int)  # a label everybody chose: its column is one class, never pruned
    probabilities = np.full((20, 2), 0.9)
    probabilities[0, 0] = 0.01
    assert find_multilabel_issues(always, probabilities) == []
    with pytest.raises(ValueError, match="0 and 1"):
        find_multilabel_issues(np.full((2, 2), 2), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        find_multilabel_issues(np.ones((2, 2), dtype=int), np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match="both be"):
        find_multilabel_issues(np.ones((2, 2), dtype=int), np.full((2, 3), 0.5))


def test_the_module_needs_numpy_only():
    code = "import sys, functions.model.confident_learning; print(sorted(m for m in ('sklearn', 'scipy', 'pandas', 'cleanlab') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
