"""Where labels help most: the labelling loop on AG News, served score ascending vs at random.

    .venv/bin/python bench/active_learning.py [--seeds 3] [--seed-size 100] [--batch 100] [--budget 2000]

Simulates what a team does in Label Studio, with the backend's own code at every step:

  1. label a random seed set (--seed-size tasks of the training split);
  2. train: the labelled tasks, in Label Studio's export format, go through the training path
     (`functions.dataset.build_training_set`, then `functions.training._fit_control` with the
     default settings: the default pipeline with 5-fold out-of-fold predictions, the calibration
     fitted on them, export to the compact model and the agreement check) - exactly what Start
     Training publishes;
  3. measure test accuracy: the labels `functions.serving.predict_tasks` returns for the test
     split (the compact model, as /predict serves it);
  4. choose the next --batch tasks from the unlabelled pool and label them (the gold labels):
       - by score: `predict_tasks` scores every unlabelled task, and the lowest scores are
         taken first. The score is the calibrated probability of the predicted label among the
         config's labels, so this is exactly what sorting the Data Manager by prediction score,
         ascending, and labelling from the top gives (least sure first);
       - at random: the reference, from the same seed set in the same run.
     Then back to 2, until --budget labels.

The pool is the whole training split (5,280 tasks), the test split (1,320) is never labelled.
Each seed draws its own seed set and random order; both strategies share the seed set. The
(seed, strategy) runs are spread over --workers processes (default: the CPU count, at most 2),
each with one BLAS thread. Reported: per strategy, the labels needed to reach each target
accuracy (the first point of the curve at or above it; median over the seeds, and the value of
each seed; "> budget" when not reached), and the learning curves (median accuracy over the
seeds at each label count, min-max beside it). The data is read in place from
../shared/data/<data> (or SHARED_DIR).
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # before NumPy loads, as training runs (threadpool_limits(1))

import argparse
import json
import math
import random
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
sys.path.insert(0, str(ROOT))

STRATEGIES = ("random", "score")  # the reference first
TARGETS = (0.80, 0.85)


def load_data(name: str) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    folder = SHARED / "data" / name
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: the benchmark reads the shared data sets in place (set SHARED_DIR)")
    read = lambda file: json.loads((folder / file).read_text(encoding="utf-8"))  # noqa: E731
    config = (folder / "label_config.xml").read_text(encoding="utf-8")
    return config, read("labeled_train.json"), read("labeled_test.json")


def gold_label(task: dict[str, Any]) -> str:
    return task["annotations"][0]["result"][0]["value"]["choices"][0]


def unlabelled(task: dict[str, Any]) -> dict[str, Any]:
    """The task as /predict receives it: no annotations."""
    return {"id": task["id"], "data": task["data"]}


class Backend:
    """Train and serve as the backend does, in process (no store, no HTTP)."""

    def __init__(self, config_xml: str) -> None:
        from functions.label_config import parse_label_config
        from functions.settings import Settings

        self.config = parse_label_config(config_xml)
        self.config.require_controls()
        self.settings = Settings(_env_file=None)  # the backend's defaults
        self.params = self.settings.model_params()
        self.trainings = 0

    def train(self, labelled: list[dict[str, Any]]) -> Any:
        """A `versions.StoredModel` fitted on `labelled` (tasks in export format)."""
        from functions.dataset import build_training_set
        from functions.training import _fit_control
        from functions.versions import StoredModel

        training_set = build_training_set(labelled, self.config)
        models, labels, controls = {}, {}, {}
        for name, examples in training_set.controls.items():
            fitted = _fit_control(examples, self.params, self.settings)
            models[name], labels[name] = fitted.serving, fitted.classes
            control = examples.control
            controls[name] = {"to_name": control.to_name, "data_key": control.data_key, "multiple": control.multiple}
        self.trainings += 1
        return StoredModel(f"bench-v{self.trainings}", models, labels, {"controls": controls})

    def predict(self, tasks: list[dict[str, Any]], model: Any) -> list[dict[str, Any]]:
        from functions.serving import predict_tasks

        return predict_tasks(tasks, self.config, model)


def accuracy(items: list[dict[str, Any]], gold: list[str]) -> float:
    predicted = [item["result"][0]["value"]["choices"][0] if item["result"] else None for item in items]
    return sum(1 for label, true in zip(predicted, gold) if label == true) / len(gold)


def simulate(job: tuple[int, str], config_xml: str, train: list[dict[str, Any]], test: list[dict[str, Any]],
             seed_size: int, batch: int, budget: int) -> tuple[int, str, list[tuple[int, float]], float]:
    """One (seed, strategy) run: its curve [(labels, test accuracy)] and its CPU time."""
    seed, strategy = job
    started = time.process_time()
    backend = Backend(config_xml)
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)  # same seed -> same seed set and pool order for both strategies
    labelled, pool = order[:seed_size], order[seed_size:]
    test_tasks, test_gold = [unlabelled(t) for t in test], [gold_label(t) for t in test]
    curve = []
    while True:
        model = backend.train([train[i] for i in labelled])
        curve.append((len(labelled), accuracy(backend.predict(test_tasks, model), test_gold)))
        take = min(batch, budget - len(labelled), len(pool))
        if take <= 0:
            break
        if strategy == "score":
            scores = [item["score"] for item in backend.predict([unlabelled(train[i]) for i in pool], model)]
            ranked = sorted(range(len(pool)), key=scores.__getitem__)  # ascending, stable: least sure first
            chosen = set(ranked[:take])
            labelled += [pool[r] for r in ranked[:take]]
            pool = [index for r, index in enumerate(pool) if r not in chosen]
        else:
            labelled, pool = labelled + pool[:take], pool[take:]
    return seed, strategy, curve, time.process_time() - started


def labels_to_reach(curve: list[tuple[int, float]], target: float) -> float:
    return next((float(n) for n, acc in curve if acc >= target), math.inf)


def show_count(value: float, budget: int) -> str:
    return f"> {budget:,}" if math.isinf(value) else f"{value:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="ag_news", help="data set under ../shared/data (default ag_news)")
    parser.add_argument("--seeds", type=int, default=3, help="repetitions with different seed sets (default 3)")
    parser.add_argument("--seed-size", type=int, default=100,
                        help="random labels before the first training (default 100)")
    parser.add_argument("--batch", type=int, default=100, help="labels added between trainings (default 100)")
    parser.add_argument("--budget", type=int, default=2000, help="labels at which the loop stops (default 2000)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="processes (default min(2, CPUs))")
    args = parser.parse_args()
    began = time.perf_counter()

    config_xml, train, test = load_data(args.data)
    budget = min(args.budget, len(train))
    defaults = Backend(config_xml).params
    print(f"data: {args.data}, pool = {len(train):,} training tasks, {len(test):,} test tasks; "
          f"seed set {args.seed_size}, batches of {args.batch}, up to {budget:,} labels; {args.seeds} seed(s); "
          f"{args.workers} worker(s), 1 BLAS thread each")
    print(f"model: the backend's default pipeline {defaults.__dict__}; python {sys.version.split()[0]}, "
          f"scikit-learn {metadata.version('scikit-learn')}; {os.cpu_count()} CPU(s)", flush=True)

    jobs = [(seed, strategy) for seed in range(args.seeds) for strategy in STRATEGIES]
    run = partial(simulate, config_xml=config_xml, train=train, test=test,
                  seed_size=args.seed_size, batch=args.batch, budget=budget)
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {s: {} for s in STRATEGIES}
    cpu = 0.0
    with ProcessPoolExecutor(args.workers) as pool:
        for seed, strategy, curve, seconds in pool.map(run, jobs):
            curves[strategy][seed] = curve
            cpu += seconds
            print(f"  seed {seed} {strategy:>6}: {len(curve)} trainings, final accuracy {curve[-1][1]:.3f} "
                  f"at {curve[-1][0]:,} labels ({seconds:.0f} s CPU)", flush=True)

    names = {"random": "at random (reference)", "score": "score ascending"}
    print("\nlabels needed to reach a test accuracy (median over the seeds; each seed's in brackets)")
    header = f"{'strategy':24}" + "".join(f" {f'acc >= {t:.2f}':>34}" for t in TARGETS)
    print(header + "\n" + "-" * len(header))
    for strategy in STRATEGIES:
        cells = []
        for target in TARGETS:
            needed = [labels_to_reach(curves[strategy][seed], target) for seed in sorted(curves[strategy])]
            each = ", ".join(show_count(n, budget) for n in needed)
            cells.append(f"{show_count(statistics.median(needed), budget)} [{each}]")
        print(f"{names[strategy]:24}" + "".join(f" {cell:>34}" for cell in cells))

    print("\nlearning curves: test accuracy, median over the seeds [min-max]")
    header = f"{'labels':>7} {'at random (reference)':>24} {'score ascending':>24} {'difference':>11}"
    print(header + "\n" + "-" * len(header))
    points = [n for n, _ in curves["random"][0]]
    for index, labels in enumerate(points):
        row, medians = f"{labels:>7,}", []
        for strategy in STRATEGIES:
            values = [curves[strategy][seed][index][1] for seed in sorted(curves[strategy])]
            medians.append(statistics.median(values))
            row += f" {f'{medians[-1]:.3f} [{min(values):.3f}-{max(values):.3f}]':>24}"
        print(row + f" {medians[1] - medians[0]:>+11.3f}")
    print(f"\ntook {time.perf_counter() - began:.0f} s wall ({cpu:.0f} s CPU in the workers); load average now "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
