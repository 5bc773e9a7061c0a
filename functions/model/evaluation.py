"""Quality of a control's model, measured on a stratified hold-out before the final fit.

With at least `MIN_EXAMPLES` examples, 20 % are held out (stratified by label where every
label has 2 examples or more), a model is fitted on the rest and scored: accuracy and
macro-F1 for single choice, micro- and macro-F1 (and exact-match accuracy) for multiple
choice. The caller then fits the served model on all examples.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MultiLabelBinarizer

from functions.model.classifier import ModelParams, fit, fit_multilabel
from functions.model.decisions import decide

MIN_EXAMPLES = 50
HOLDOUT = 0.2


def holdout_metrics(
    texts: Sequence[str], targets: Sequence[tuple[str, ...]], multiple: bool, params: ModelParams, threshold: float
) -> dict[str, Any]:
    """Metrics of a model fitted on 80 % of the examples and scored on the other 20 %."""
    if len(texts) < MIN_EXAMPLES:
        return {"holdout": None, "note": f"no hold-out: fewer than {MIN_EXAMPLES} examples"}
    first = [target[0] for target in targets]
    counts = Counter(first)
    stratify = first if min(counts.values()) >= 2 and len(counts) * 2 <= len(texts) * HOLDOUT else None
    train_x, test_x, train_y, test_y = train_test_split(
        list(texts), list(targets), test_size=HOLDOUT, random_state=0, stratify=stratify
    )
    if multiple:
        model = fit_multilabel(train_x, train_y, params)
        chosen = decide(model.predict_proba(test_x), True, threshold)
        predicted = [tuple(model.classes[i] for i in columns) for columns, _ in chosen]
        binarizer = MultiLabelBinarizer(classes=sorted({l for t in list(targets) for l in t})).fit([])
        truth, guess = binarizer.transform(test_y), binarizer.transform(predicted)
        scores = {
            "micro_f1": f1_score(truth, guess, average="micro", zero_division=0),
            "macro_f1": f1_score(truth, guess, average="macro", zero_division=0),
            "exact_match": accuracy_score(truth, guess),
        }
    else:
        model = fit(train_x, [t[0] for t in train_y], params)
        guess = [model.classes[columns[0]] for columns, _ in decide(model.predict_proba(test_x), False, threshold)]
        truth = [t[0] for t in test_y]
        scores = {"accuracy": accuracy_score(truth, guess), "macro_f1": f1_score(truth, guess, average="macro", zero_division=0)}
    return {
        "holdout": {"train": len(train_x), "test": len(test_x), "stratified": stratify is not None},
        **{name: round(float(value), 4) for name, value in scores.items()},
    }
