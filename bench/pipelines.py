"""The tutorial pipeline beside candidate default pipelines (all TF-IDF + logistic regression), per data set, in one run.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/pipelines.py [--data ag_news,bbc_news,sms_spam] [--only nb_word12,...]

The data is read in place from ../shared/data/<data> (or SHARED_DIR): labeled_train.json to fit,
labeled_test.json to score (Label Studio export format; the first annotation's first choice is the
label). Every candidate is fitted once per data set, in this process, one after the other.

This is the selection bench that chose MODEL_PRESET=default (``nb_word12_c3``, later with balanced
class weights); bench/default_model.py compares the shipped default with the tutorial.
The reference row, ``tutorial``, is the tutorial's ``TfidfVectorizer(ngram_range=(1, 3))`` then
``LogisticRegression(C=10)``, solved with newton-cg, tol 1e-6 like every row here. The candidates
keep the same solver settings and change the features (`CANDIDATES` says how); C is 10 unless
the name says otherwise.

Figures, per data set and pipeline:
  - acc / macro-F1: of ``predict_proba``'s arg-max on the test split (SMS spam: macro-F1 is the
    headline, its classes are 88 % / 12 %); Δ in points against the tutorial row.
  - fit s: CPU seconds (``time.process_time``, one thread: OPENBLAS_NUM_THREADS=1) of
    ``pipeline.fit`` on the training split, vectorizing included.
  - export s: CPU seconds of `functions.model.export.to_compact` plus `compact.dumps`, the rest of
    what publishing a version adds to the fit.
  - pickle MB: ``len(pickle.dumps(pipeline, HIGHEST_PROTOCOL))``, the stored artifact;
    npz MB: ``len(compact.dumps({"c": compact_model}))``, the served model.
  - load ms: CPU ms of `compact.loads` of those bytes plus ``predict_proba`` of one test text
    (what a cold API process pays before its first answer; the vocabulary of a block without a
    word index is built on first use), the median of 3.
  - max|Δp|: max |pipeline.predict_proba − loaded compact predict_proba| over the test texts and
    the empty text; ``exact`` means ≤ `functions.model.export.TOLERANCE` (1e-9). A pipeline that
    `to_compact` refuses is shown as ``unsupported`` (it could not ship).
  - ratios (×) are candidate / tutorial on the same data set.

The goal (issue 10, item 1) is checked for each candidate: ≥ +1 point over the tutorial on AG
News and BBC News accuracy and on SMS spam macro-F1, a smaller model (pickle and npz) and a fit
≤ 2× the tutorial's on every data set, served exactly. The recommendation is, among the
candidates that meet it, the one with the cheapest fit relative to the tutorial's (its largest
fit ratio over the data sets): the whole training job, calibration and out-of-fold predictions
included, must stay within 2× the tutorial's single fit. The test splits are small (BBC: 425
texts, one text = 0.24 points; SMS spam: 128 spam texts), so a margin of a few texts is noise.
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads: fits run on one thread, as in the train function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
DATA_SETS = ("ag_news", "bbc_news", "sms_spam")
HEADLINE = {"ag_news": "accuracy", "bbc_news": "accuracy", "sms_spam": "macro_f1"}
GAIN_POINTS = 1.0  # the goal: at least +1 point on each headline figure
MAX_FIT_RATIO = 2.0
LOAD_REPEATS = 3

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score  # noqa: E402
from sklearn.pipeline import FeatureUnion, Pipeline  # noqa: E402

import compare_reference as reference  # noqa: E402 - the shared data sets, read as the reference benchmark does

from functions.model import compact  # noqa: E402
from functions.model.classifier import build_pipeline  # noqa: E402
from functions.model.export import TOLERANCE, UnsupportedPipeline, to_compact  # noqa: E402
from functions.model.nb_weights import NBFeatureWeights  # noqa: E402
from functions.settings import PRESETS, ModelParams  # noqa: E402


# ------------------------------------------------------------------------------ candidates


def _logreg(c: float) -> LogisticRegression:
    """The backend's logistic regression (newton-cg, tol 1e-6) with inverse regularisation `c`."""
    defaults = ModelParams()
    return LogisticRegression(C=c, max_iter=defaults.max_iter, solver=defaults.solver, tol=defaults.tol)


def _words(ngram_max: int, **options: Any) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, ngram_max), **options)


def _words_and_chars(**options: Any) -> FeatureUnion:
    """Word (1, 2)-grams beside char_wb (2, 5)-grams, each block l2-normalised."""
    return FeatureUnion(
        [("word", TfidfVectorizer(ngram_range=(1, 2), **options)),
         ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), **options))]
    )


SUBLINEAR = {"sublinear_tf": True, "min_df": 2}

# name -> (what it is, builder of the unfitted pipeline); the first is the reference row.
CANDIDATES: dict[str, tuple[str, Callable[[], Pipeline]]] = {
    "tutorial": ("word (1,3), C=10, solved with newton-cg", lambda: build_pipeline(BENCH_TUTORIAL)),
    "sub_md2": ("word (1,3), sublinear_tf, min_df=2",
                lambda: Pipeline([("tfidf", _words(3, **SUBLINEAR)), ("logreg", _logreg(10))])),
    "union": ("word (1,2) + char_wb (2,5)",
              lambda: Pipeline([("tfidf", _words_and_chars()), ("logreg", _logreg(10))])),
    "union_sub_md2": ("word (1,2) + char_wb (2,5), sublinear_tf, min_df=2",
                      lambda: Pipeline([("tfidf", _words_and_chars(**SUBLINEAR)), ("logreg", _logreg(10))])),
    "nb_word13_c3": ("word (1,3), sublinear_tf, min_df=2, NB weights, C=3",
                     lambda: Pipeline([("tfidf", _words(3, **SUBLINEAR)), ("nb", NBFeatureWeights()), ("logreg", _logreg(3))])),
    "nb_word12_c3": ("word (1,2), sublinear_tf, min_df=2, NB weights, C=3",
                     lambda: Pipeline([("tfidf", _words(2, **SUBLINEAR)), ("nb", NBFeatureWeights()), ("logreg", _logreg(3))])),
    "nb_union_c3": ("word (1,2) + char_wb (2,5), sublinear_tf, min_df=2, NB weights, C=3",
                    lambda: Pipeline([("tfidf", _words_and_chars(**SUBLINEAR)), ("nb", NBFeatureWeights()), ("logreg", _logreg(3))])),
}
REFERENCE = "tutorial"
# The tutorial's features and C with the backend's solver: this bench compares features, so every row is
# solved alike (MODEL_PRESET=tutorial uses the tutorial's own lbfgs; bench/default_model.py compares with that).
BENCH_TUTORIAL = replace(PRESETS["tutorial"], solver="newton-cg", tol=1e-6, max_iter=1000)


# ------------------------------------------------------------------------------------ data


@dataclass
class Data:
    """One shared data set: training and test texts with their labels."""

    name: str
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def load_data(name: str) -> Data:
    """Texts and labels of a shared data set's splits, as the reference benchmark reads them."""
    shared = reference.load_data(name)
    return Data(name, *reference.tutorial_examples(shared.train), *reference.tutorial_examples(shared.test))


# ------------------------------------------------------------------------------- measuring


def measure(data: Data, build: Callable[[], Pipeline]) -> dict[str, Any]:
    """Every figure of one pipeline on one data set (see the module docstring)."""
    pipeline = build()
    cpu = time.process_time()
    pipeline.fit(data.train_texts, data.train_labels)
    fit_s = time.process_time() - cpu
    probabilities = pipeline.predict_proba(data.test_texts)
    predicted = pipeline.classes_[probabilities.argmax(axis=1)]
    row: dict[str, Any] = {
        "accuracy": accuracy_score(data.test_labels, predicted),
        "macro_f1": f1_score(data.test_labels, predicted, average="macro"),
        "fit_s": fit_s,
        "pickle_bytes": len(pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)),
        "features": int(pipeline.steps[-1][1].coef_.shape[1]),
    }
    cpu = time.process_time()
    try:
        served = to_compact(pipeline)
    except UnsupportedPipeline as error:
        return {**row, "unsupported": str(error)}
    blob = compact.dumps({"c": served})
    row["export_s"] = time.process_time() - cpu
    row["npz_bytes"] = len(blob)
    loads = []
    for _ in range(LOAD_REPEATS):
        cpu = time.process_time()
        loaded = compact.loads(blob)["c"]
        loaded.predict_proba(data.test_texts[:1])
        loads.append(time.process_time() - cpu)
    row["load_ms"] = 1000 * statistics.median(loads)
    texts = [*data.test_texts, ""]
    expected = np.vstack([probabilities, pipeline.predict_proba([""])])
    row["max_dp"] = float(np.max(np.abs(expected - loaded.predict_proba(texts))))
    return row


# ------------------------------------------------------------------------------- reporting


def _mb(value: float) -> str:
    return f"{value / 1e6:.2f}"


def print_table(data: str, rows: dict[str, dict[str, Any]]) -> None:
    """One data set's table, the tutorial first; Δ in points and × against it."""
    ref = rows[REFERENCE]
    print(f"\n### {data} (headline: {'macro-F1' if HEADLINE[data] == 'macro_f1' else 'accuracy'})\n")
    print("| pipeline | acc | Δ pts | macro-F1 | Δ pts | fit s | × | export s | pickle MB | × | npz MB | × | load ms | × | features | max\\|Δp\\| |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        cells = [
            name, f"{row['accuracy']:.4f}", f"{100 * (row['accuracy'] - ref['accuracy']):+.2f}",
            f"{row['macro_f1']:.4f}", f"{100 * (row['macro_f1'] - ref['macro_f1']):+.2f}",
            f"{row['fit_s']:.2f}", f"{row['fit_s'] / ref['fit_s']:.2f}",
        ]
        if "unsupported" in row:
            cells += ["-", _mb(row["pickle_bytes"]), f"{row['pickle_bytes'] / ref['pickle_bytes']:.2f}",
                      "-", "-", "-", "-", f"{row['features']:,}", "unsupported"]
        else:
            exact = "exact" if row["max_dp"] <= TOLERANCE else "NOT EXACT"
            cells += [
                f"{row['export_s']:.2f}", _mb(row["pickle_bytes"]), f"{row['pickle_bytes'] / ref['pickle_bytes']:.2f}",
                _mb(row["npz_bytes"]), f"{row['npz_bytes'] / ref['npz_bytes']:.2f}",
                f"{row['load_ms']:.0f}", f"{row['load_ms'] / ref['load_ms']:.2f}", f"{row['features']:,}",
                f"{row['max_dp']:.1e} {exact}",
            ]
        print("| " + " | ".join(cells) + " |")
    print(flush=True)


def goal_failures(name: str, results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Why candidate `name` misses issue 10's goal (empty: it meets it)."""
    failures = []
    for data, rows in results.items():
        row, ref = rows[name], rows[REFERENCE]
        metric = HEADLINE[data]
        gain = 100 * (row[metric] - ref[metric])
        if gain < GAIN_POINTS - 1e-9:
            failures.append(f"{data} {metric} {gain:+.2f} pts")
        if row["fit_s"] > MAX_FIT_RATIO * ref["fit_s"]:
            failures.append(f"{data} fit {row['fit_s'] / ref['fit_s']:.2f}×")
        if "unsupported" in row:
            failures.append(f"{data}: not servable ({row['unsupported']})")
            continue
        if row["pickle_bytes"] >= ref["pickle_bytes"] or row["npz_bytes"] >= ref["npz_bytes"]:
            failures.append(f"{data} model not smaller (pickle {row['pickle_bytes'] / ref['pickle_bytes']:.2f}×, "
                            f"npz {row['npz_bytes'] / ref['npz_bytes']:.2f}×)")
        if not row["max_dp"] <= TOLERANCE:
            failures.append(f"{data} compact model off by {row['max_dp']:.1e}")
    return failures


def print_recommendation(results: dict[str, dict[str, dict[str, Any]]]) -> None:
    names = [name for name in next(iter(results.values())) if name != REFERENCE]
    print("### Goal check (≥ +1 pt on AG News and BBC News accuracy and SMS spam macro-F1, smaller model, "
          f"fit ≤ {MAX_FIT_RATIO:g}× the tutorial's, served exactly)\n")
    passing = []
    for name in names:
        failures = goal_failures(name, results)
        worst_fit = max(rows[name]["fit_s"] / rows[REFERENCE]["fit_s"] for rows in results.values())
        gains = ", ".join(f"{data} {100 * (rows[name][HEADLINE[data]] - rows[REFERENCE][HEADLINE[data]]):+.2f}"
                          for data, rows in results.items())
        print(f"- {name} ({CANDIDATES[name][0]}): {'MEETS the goal' if not failures else 'misses: ' + '; '.join(failures)} "
              f"[gains in pts: {gains}; largest fit ratio {worst_fit:.2f}×]")
        if not failures:
            passing.append((worst_fit, name))
    print()
    if set(results) != set(DATA_SETS):
        print("Recommendation: none (the goal needs all three data sets; this run had " + ", ".join(results) + ").")
    elif passing:
        _, best = min(passing)
        print(f"Recommendation: {best} ({CANDIDATES[best][0]}): it meets the goal with the cheapest fit "
              "relative to the tutorial's, which leaves the most room for the rest of the training job "
              "(calibration and out-of-fold predictions) within 2× the tutorial's single fit.")
    else:
        print("Recommendation: none of the candidates meets the goal (see the reasons above).")


# ------------------------------------------------------------------------------------ main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=",".join(DATA_SETS), help="comma-separated data sets under ../shared/data")
    parser.add_argument("--only", default="", help="comma-separated candidates (the tutorial row is always run)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    began = time.perf_counter()
    chosen = [REFERENCE, *[n for n in args.only.split(",") if n and n != REFERENCE]] if args.only else list(CANDIDATES)
    unknown = [n for n in chosen if n not in CANDIDATES]
    if unknown:
        raise SystemExit(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    import sklearn

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cpu(s), load average {load}; python {sys.version.split()[0]}, "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}; OPENBLAS_NUM_THREADS=1")
    print("\n| pipeline | what it is |\n|---|---|")
    for name in chosen:
        print(f"| {name} | {CANDIDATES[name][0]} |")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for data_name in args.data.split(","):
        data = load_data(data_name)
        print(f"\n{data_name}: {len(data.train_texts)} training, {len(data.test_texts)} test texts", flush=True)
        rows = {}
        for name in chosen:
            rows[name] = measure(data, CANDIDATES[name][1])
            print(f"  {name}: fitted in {rows[name]['fit_s']:.2f} s CPU", flush=True)
        results[data_name] = rows
        print_table(data_name, rows)
    print_recommendation(results)
    print(f"\ntook {time.perf_counter() - began:.0f} s (wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
