"""Peak memory and time of one training on N short texts, to size the train function.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/train_memory.py [--texts 100000]

The texts are synthetic, drawn word by word from each AG News class's own words (in
../shared/data), 8–30 words each. Drawing words at random makes almost every trigram new, so
the vocabulary (and memory) is larger than real text of the same size would give: an upper
bound. The reference line is the same pipeline fitted on the real AG News training split,
measured in the same run. Each fit runs in a fresh process and reports its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from functions.model.classifier import fit
from functions.settings import Settings
texts, labels = json.load(open(sys.argv[1]))
started = time.perf_counter()
model = fit(texts, labels, Settings().model_params())
seconds = time.perf_counter() - started
import pickle
size = len(pickle.dumps(model.pipeline, protocol=pickle.HIGHEST_PROTOCOL))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
features = len(model.pipeline.named_steps["tfidf"].vocabulary_)
print(json.dumps({"seconds": seconds, "peak_bytes": peak, "pickle_bytes": size, "features": features}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=100_000)
    args = parser.parse_args()
    train = json.loads((SHARED / "data" / "ag_news" / "labeled_train.json").read_text())
    real = ([t["data"]["text"] for t in train], [t["annotations"][0]["result"][0]["value"]["choices"][0] for t in train])
    words: dict[str, list[str]] = {}
    for text, label in zip(*real):
        words.setdefault(label, []).extend(text.split())
    rng = random.Random(42)
    labels = [rng.choice(sorted(words)) for _ in range(args.texts)]
    synthetic = ([" ".join(rng.choices(words[label], k=rng.randint(8, 30))) for label in labels], labels)

    print(f"{'data':40} {'texts':>8} {'features':>10} {'fit s':>7} {'peak RSS MiB':>13} {'pickle MiB':>11}")
    for name, data in [("AG News train split (reference)", real), ("synthetic short texts", synthetic)]:
        path = Path("/tmp") / f"train_memory_{len(data[0])}.json"
        path.write_text(json.dumps(data))
        done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(ROOT)], capture_output=True, text=True, check=True)
        result = json.loads(done.stdout)
        print(f"{name:40} {len(data[0]):8} {result['features']:10} {result['seconds']:7.1f} "
              f"{result['peak_bytes'] / 2**20:13.0f} {result['pickle_bytes'] / 2**20:11.1f}")
        path.unlink()


if __name__ == "__main__":
    main()
