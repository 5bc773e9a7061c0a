"""Suspect annotations: confident learning on out-of-fold predicted probabilities.

The method is confident learning (Northcutt, Jiang & Chuang 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 70), as cleanlab 2.9 implements it in
``cleanlab.filter.find_label_issues`` with its defaults (``filter_by="prune_by_noise_rate"``,
``frac_noise=1``, ``min_examples_per_class=1``), ranked like
``return_indices_ranked_by="self_confidence"`` (``cleanlab.rank.get_label_quality_scores``):

1. Per-class thresholds t_j: the mean probability of class j over the examples annotated j
   (classes nobody annotated get 2, which no probability reaches; at least 2e-6).
2. Confident joint C[i, j]: examples annotated i whose probability of j reaches t_j (minus
   1e-6); when several classes reach their threshold, the row's arg-max counts. Its diagonal
   is raised to at least 1, then it is calibrated: each row scaled to the number of examples
   annotated i, the whole to n, rounded to integers keeping row totals.
3. Prune by noise rate: in each annotated class i with more than one example, for each other
   class j, the C[i, j] examples with the largest margin p_j - p_i are flagged (after moving
   counts so that at least one example per class stays unflagged).
4. Examples whose given label is still the arg-max (with a 1e-6 tie bonus) are unflagged.
5. Ranked by self-confidence (probability of the given label), lowest first.

Simplified from cleanlab, and how the result can differ from it:
- ties in self-confidence are ordered by the higher suggested-class probability, then by
  index (cleanlab leaves them in NumPy's unstable sort order); the flagged set is identical;
- no multiprocessing, no warnings (cleanlab warns about classes with one example or none:
  here they are simply never pruned), no ``frac_noise`` / ``num_to_remove_per_class``;
- a single annotated class is accepted (no issue can be found; cleanlab raises).

Multiple choice (`find_multilabel_issues`) is cleanlab's one-vs-rest reduction
(``cleanlab.multilabel_classification.filter.find_label_issues``): the steps above per label on
(1 - p, p), an annotation is suspect when any label is flagged, ranked by cleanlab's default
multi-label score (exponential moving average, alpha 0.8, of the per-label self-confidences
taken from best to worst: close to the worst label's); ties by index.

The suggested class of a single-choice issue is the model's arg-max (never the given label,
by step 4). Pure NumPy, no I/O: the caller fits the out-of-fold model and cuts the list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE = 1e-6  # cleanlab FLOATING_POINT_COMPARISON: fuzzy comparisons of probabilities
THRESHOLD_FLOOR = 2 * TIE  # cleanlab CONFIDENT_THRESHOLDS_LOWER_BOUND
ABSENT_THRESHOLD = 2.0  # threshold of a class nobody annotated: no probability reaches it
TINY = 1e-100  # cleanlab TINY_VALUE: guards divisions by zero
EMA_ALPHA = 0.8  # cleanlab's default multi-label aggregation


@dataclass(frozen=True)
class LabelIssue:
    """One suspect single-choice annotation.

    `index` is the row in the caller's arrays; `given` and `suggested` are class indices;
    `confidence` is the probability of `suggested`, `given_probability` that of `given`
    (its self-confidence: the ranking score, lower is more suspicious).
    """

    index: int
    given: int
    suggested: int
    confidence: float
    given_probability: float


@dataclass(frozen=True)
class MultiLabelIssue:
    """One suspect multiple-choice annotation.

    `given` and `suggested` are the 0/1 rows over the labels (`suggested` is `given` with every
    flagged label flipped); `flagged` the label indices confident learning flags; `confidence`
    the lowest probability the model gives to any flipped value (p for an added label, 1 - p
    for a removed one); `quality` the ranking score (lower is more suspicious).
    """

    index: int
    given: tuple[int, ...]
    suggested: tuple[int, ...]
    flagged: tuple[int, ...]
    confidence: float
    quality: float


def find_label_issues(labels: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """The annotations confident learning finds suspect, most suspicious first.

    `labels`: (n,) int class indices of the annotations, each in [0, k). `probabilities`: (n, k)
    out-of-fold predicted probabilities (rows sum to 1; zeros allowed). Classes may have no
    examples; n may be smaller than k; n = 0 or k = 1 gives []. Raises ValueError on other
    shapes, labels out of range, or probabilities that are negative or not finite.
    """
    labels, probabilities = _checked(labels, probabilities)
    mask = issue_mask(labels, probabilities)
    return _ranked(np.flatnonzero(mask), labels, probabilities)


def issue_mask(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(n,) bool: True where confident learning (prune by noise rate) flags the annotation;
    cleanlab ``find_label_issues(labels, pred_probs)``'s mask. Inputs as `find_label_issues`."""
    labels, probabilities = _checked(labels, probabilities)
    n, k = probabilities.shape
    mask = np.zeros(n, dtype=bool)
    if n == 0 or k < 2:
        return mask
    counts = np.bincount(labels, minlength=k)
    prune = _keep_one_per_class(calibrated_confident_joint(labels, probabilities).T)  # [true j, given i]
    for given in range(k):
        if counts[given] <= 1:  # cleanlab min_examples_per_class=1: never prune a class of 0 or 1
            continue
        rows = np.flatnonzero(labels == given)
        class_probabilities = probabilities[rows]
        for true in range(k):
            number = prune[true, given]
            if true != given and number > 0:
                margin = class_probabilities[:, true] - class_probabilities[:, given]
                mask[rows[np.argsort(-margin)[:number]]] = True
    boosted = probabilities.copy()
    boosted[np.arange(n), labels] += TIE
    mask[boosted.argmax(axis=1) == labels] = False
    return mask


def confident_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(k,) per-class thresholds t_j: mean probability of j over examples annotated j (2 for
    classes without examples), at least 2e-6 (paper eq. 2; cleanlab get_confident_thresholds)."""
    counts = np.bincount(labels, minlength=probabilities.shape[1])
    thresholds = [probabilities[labels == j, j].mean() if count else ABSENT_THRESHOLD for j, count in enumerate(counts)]
    return np.clip(np.array(thresholds, dtype=float), THRESHOLD_FLOOR, None)


def confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(k, k) int counts C[given, true] of the confidently counted examples, diagonal >= 1
    (paper eq. 1; cleanlab compute_confident_joint before calibration)."""
    k = probabilities.shape[1]
    confident = probabilities >= confident_thresholds(labels, probabilities) - TIE
    several = confident.sum(axis=1)
    guess = np.where(several > 1, probabilities.argmax(axis=1), confident.argmax(axis=1))
    counted = several > 0
    joint = np.bincount(labels[counted] * k + guess[counted], minlength=k * k).reshape(k, k)
    np.fill_diagonal(joint, np.maximum(joint.diagonal(), 1))
    return joint


def calibrated_confident_joint(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """(k, k) int: the confident joint with rows scaled to the annotated counts and the whole to
    n, rounded keeping row totals (paper eq. 3; cleanlab calibrate_confident_joint)."""
    joint = confident_joint(labels, probabilities)
    counts = np.bincount(labels, minlength=joint.shape[0])
    scaled = (joint.T / np.clip(joint.sum(axis=1), TINY, None) * counts).T
    scaled = scaled / np.clip(scaled.sum(), TINY, None) * counts.sum()
    return np.array([_round_keeping_sum(row) for row in scaled], dtype=int).reshape(joint.shape)


def find_multilabel_issues(label_matrix: np.ndarray, probabilities: np.ndarray) -> list[MultiLabelIssue]:
    """Suspect multiple-choice annotations, most suspicious first: binary confident learning per
    label (one-vs-rest, as cleanlab.multilabel_classification.filter.find_label_issues), an
    annotation is suspect when any of its labels is flagged.

    `label_matrix`: (n, m) 0/1 (1 = the label was chosen); `probabilities`: (n, m) independent
    per-label probabilities in [0, 1]. Raises ValueError on other shapes or values.
    """
    label_matrix = np.asarray(label_matrix)
    probabilities = np.asarray(probabilities, dtype=float)
    if label_matrix.ndim != 2 or probabilities.shape != label_matrix.shape:
        raise ValueError(f"label_matrix and probabilities must both be (n, labels), got {label_matrix.shape} and {probabilities.shape}")
    if not np.isin(label_matrix, (0, 1)).all():
        raise ValueError("label_matrix must hold only 0 and 1")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any() or (probabilities > 1).any():
        raise ValueError("per-label probabilities must be finite and in [0, 1]")
    label_matrix = label_matrix.astype(np.int64)
    flagged = np.zeros(label_matrix.shape, dtype=bool)
    agreement = np.where(label_matrix == 1, probabilities, 1 - probabilities)  # per-label self-confidence
    for column in range(label_matrix.shape[1]):
        p = probabilities[:, column]
        flagged[:, column] = issue_mask(label_matrix[:, column], np.column_stack((1 - p, p)))
    quality = _ema_of_sorted(agreement)
    rows = np.flatnonzero(flagged.any(axis=1))
    issues = []
    for row in rows[np.lexsort((rows, quality[rows]))]:
        columns = np.flatnonzero(flagged[row])
        suggested = label_matrix[row].copy()
        suggested[columns] = 1 - suggested[columns]
        issues.append(MultiLabelIssue(
            index=int(row), given=tuple(int(v) for v in label_matrix[row]), suggested=tuple(int(v) for v in suggested),
            flagged=tuple(int(c) for c in columns), confidence=float((1 - agreement[row, columns]).min()),
            quality=float(quality[row]),
        ))
    return issues


def _checked(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=float)
    if labels.ndim != 1 or probabilities.ndim != 2 or len(labels) != len(probabilities):
        raise ValueError(f"labels must be (n,) and probabilities (n, k), got {labels.shape} and {probabilities.shape}")
    if len(labels) and not np.issubdtype(labels.dtype, np.integer):
        if not np.all(np.mod(labels, 1) == 0):
            raise ValueError("labels must be integer class indices")
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= probabilities.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {probabilities.shape[1]})")
    if not np.isfinite(probabilities).all() or (probabilities < 0).any():
        raise ValueError("probabilities must be finite and non-negative")
    return labels, probabilities


def _ranked(rows: np.ndarray, labels: np.ndarray, probabilities: np.ndarray) -> list[LabelIssue]:
    """`rows` as issues ordered by self-confidence ascending, then suggested probability
    descending, then index."""
    given_probability = probabilities[rows, labels[rows]]
    suggested = probabilities[rows].argmax(axis=1)
    confidence = probabilities[rows, suggested]
    order = np.lexsort((rows, -confidence, given_probability))
    return [
        LabelIssue(int(rows[i]), int(labels[rows[i]]), int(suggested[i]), float(confidence[i]), float(given_probability[i]))
        for i in order
    ]


def _keep_one_per_class(prune: np.ndarray) -> np.ndarray:
    """cleanlab _keep_at_least_n_per_class(n=1, frac_noise=1) on the transposed joint [true,
    given]: each diagonal raised to >= 1, the raise taken evenly from that column's non-zero
    off-diagonal counts, then truncated to integers."""
    diagonal = prune.diagonal()
    raised = np.maximum(diagonal, 1)
    per_column = np.maximum(np.count_nonzero(prune, axis=0) - 1.0, 1.0)
    moved = prune - (raised - diagonal) / per_column
    moved[moved < 0] = 0
    np.fill_diagonal(moved, raised)
    return moved.astype(int)


def _round_keeping_sum(values: np.ndarray) -> np.ndarray:
    """Round to integers whose sum is the rounded sum (cleanlab round_preserving_sum, itself
    after iteround): the values furthest from their rounding move first."""
    floats = np.asarray(values, dtype=float)
    ints = floats.round()
    target = np.sum(floats).round()
    total = np.sum(ints).round()
    while abs(total - target) > TIE:
        step = -1 if np.round(target - total) < 0 else 1
        changes = min(int(abs(np.round(target - total))), len(floats))
        for i in np.argsort(floats - ints)[::-step][:changes]:
            ints[i] += step
        total = np.sum(ints).round()
    return ints.astype(int)


def _ema_of_sorted(scores: np.ndarray, alpha: float = EMA_ALPHA) -> np.ndarray:
    """(n,) exponential moving average of each row's scores taken from highest to lowest
    (cleanlab multilabel_scorer.exponential_moving_average): weighted towards the worst label."""
    if scores.shape[1] == 0:
        return np.ones(scores.shape[0])
    ordered = np.sort(scores, axis=1)[:, ::-1]
    average = ordered[:, 0]
    for column in ordered[:, 1:].T:
        average = alpha * column + (1 - alpha) * average
    return average
