import numpy as np

from functions.model.decisions import decide


def test_single_choice_takes_the_most_probable_label():
    assert decide(np.array([[0.2, 0.7, 0.1], [0.5, 0.1, 0.4]]), False, 0.5) == [([1], 0.7), ([0], 0.5)]


def test_multiple_choice_lists_labels_at_or_above_the_threshold_most_probable_first():
    rows = np.array([[0.6, 0.9, 0.5, 0.1], [0.2, 0.3, 0.1, 0.05]])
    assert decide(rows, True, 0.5) == [([1, 0, 2], 0.5), ([1], 0.3)]  # 2nd: only the top label, score < threshold
