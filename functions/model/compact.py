"""The serving model: a fitted TF-IDF + logistic regression pipeline as plain arrays, scored
with NumPy only. It is data, not code: loading it executes nothing (no pickle).

A `CompactModel` holds one or more feature blocks (one per vectorizer: a word block, and
for example a ``char_wb`` block beside it) and one linear layer over their concatenated
columns. For a text, block b gives counts ``tf`` over its vocabulary; then

    w = f(tf) · idf                      f: identity, 1 + ln (sublinear_tf), or 1 (binary)
    x_b = w / ‖w‖                        l2 or l1 norm of the block, or none
    d = intercept + Σ_b x_b · coef_b     coef (n_features, n_outputs)
    p = softmax(d) | [1 - σ(d), σ(d)] | σ(d) per label
    p' = calibration(p)                  Platt scaling, when the version has one (`functions.model.calibration`)

To save work per request, the idf and any later per-feature weights (transformer weights,
feature scaling) are folded into ``coef`` when the model is exported: ``coef`` holds
``idf · weights · coef`` and only the norm still needs the idf (`FeatureBlock.idf`).

Storage (`dumps` / `loads`): one ``.npz`` file (NumPy's zip of ``.npy`` arrays, read with
``allow_pickle=False``) holding every control of a version: a JSON header (array
``header``) that names the settings and shapes, and the arrays. Format 3 added the
calibration; format 2 files (no calibration) still load. Each vocabulary is one
UTF-8 array of the terms in column order, joined by a separator that no term contains.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from functools import cached_property
from itertools import repeat
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from functions.errors import CorruptModel
from functions.model.analyzers import Analyzer
from functions.model.calibration import Calibration
from functions.model.word_index import WordIndex

FORMAT = "ls-textcls-compact/3"
READABLE = (FORMAT, "ls-textcls-compact/2")
OUTPUTS = ("softmax", "binary", "sigmoid")  # multinomial LR; binary LR; one-vs-rest labels
NORMS = (None, "l1", "l2")
SEPARATORS = ("\n", "\x00", "\x1f", "\uffff")


@dataclass(frozen=True)
class FeatureBlock:
    """One vectorizer: its analysis, vocabulary, term weighting and norm.

    Attributes:
        analyzer: how a text becomes features.
        terms: the vocabulary, in column order.
        idf: (n_terms,) float64, or None when the vectorizer used no idf.
        sublinear_tf: tf becomes 1 + ln(tf).
        binary: tf becomes 1 for every present term.
        norm: None, ``"l1"`` or ``"l2"``: each text's block is divided by this norm.
        index: the word n-gram index of `terms` (`WordIndex.build`), the fast way to find a
            batch's columns; without one, each feature is looked up in `vocabulary`.
    """

    analyzer: Analyzer
    terms: Sequence[str]
    idf: np.ndarray | None
    sublinear_tf: bool = False
    binary: bool = False
    norm: str | None = "l2"
    index: WordIndex | None = None

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ValueError(f"unsupported norm {self.norm!r}")
        if self.idf is not None and self.idf.shape != (len(self.terms),):
            raise ValueError(f"idf has shape {self.idf.shape} for {len(self.terms)} terms")
        if self.index is not None and (
            len(self.index.columns) != len(self.terms)
            or np.any(np.bincount(self.index.columns, minlength=len(self.terms)) != 1)
        ):
            raise ValueError(f"the index does not map its keys one to one onto the block's {len(self.terms)} columns")

    @property
    def size(self) -> int:
        """Number of columns (terms)."""
        return len(self.terms)

    @cached_property
    def vocabulary(self) -> dict[str, int]:
        """term → column (built on first use: blocks with an index never need it to predict)."""
        return dict(zip(self.terms, range(len(self.terms))))

    def scaled_counts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block's non-zero entries for `texts`: (rows, columns, values), sorted by row.

        ``values`` are ``f(tf) / ‖f(tf) · idf‖``: multiplied by the folded coefficients, they
        give the block's share of each decision value.
        """
        if self.index is not None:
            rows, columns = self.index.find(map(self.analyzer.tokens, texts), len(texts))
        else:
            rows, columns = self._lookup(texts)
        keys, counts = np.unique(rows * self.size + columns, return_counts=True)
        rows, columns = np.divmod(keys, self.size)
        tf = np.ones(len(keys)) if self.binary else counts.astype(np.float64)
        if self.sublinear_tf and not self.binary:
            tf = np.log(tf) + 1.0
        if self.norm is None:
            return rows, columns, tf
        weighted = tf * self.idf[columns] if self.idf is not None else tf
        per_row = weighted * weighted if self.norm == "l2" else np.abs(weighted)
        norms = np.bincount(rows, weights=per_row, minlength=len(texts))
        if self.norm == "l2":
            norms = np.sqrt(norms)
        return rows, columns, tf / norms[rows]

    def _lookup(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of every feature of `texts` found in the vocabulary, one per occurrence."""
        get, analyze = self.vocabulary.get, self.analyzer
        found: list[int] = []
        lengths = np.empty(len(texts), dtype=np.int64)
        for row, text in enumerate(texts):
            before = len(found)
            found.extend(map(get, analyze(text), repeat(-1)))
            lengths[row] = len(found) - before
        columns = np.fromiter(found, dtype=np.int64, count=len(found))
        rows = np.repeat(np.arange(len(texts), dtype=np.int64), lengths)
        known = columns >= 0
        return rows[known], columns[known]


class PackedTerms(Sequence[str]):
    """A stored vocabulary: terms joined by `separator`, split into a list on first use."""

    def __init__(self, joined: str, separator: str, count: int) -> None:
        if (joined.count(separator) + 1 if count else len(joined)) != count:
            raise ValueError(f"the stored vocabulary does not hold {count} terms")
        self._joined, self._separator, self._count = joined, separator, count

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index):  # type: ignore[no-untyped-def] - Sequence's int and slice forms
        return self._terms[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._terms)

    @cached_property
    def _terms(self) -> list[str]:
        return self._joined.split(self._separator) if self._count else []


@dataclass(frozen=True)
class CompactModel:
    """A fitted classifier for one control, as arrays.

    Attributes:
        blocks: the feature blocks, in column order.
        coef: (n_features, n_outputs) float64, idf and feature weights folded in.
        intercept: (n_outputs,) float64; ±inf for a label every example had (or none had).
        output: ``"softmax"`` (n_outputs = n_classes), ``"binary"`` (one output, two
            classes) or ``"sigmoid"`` (one independent probability per label).
        calibration: applied to the probabilities last; None serves them as the pipeline gives them.
    """

    blocks: tuple[FeatureBlock, ...]
    coef: np.ndarray
    intercept: np.ndarray
    output: str
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        features = sum(block.size for block in self.blocks)
        if self.output not in OUTPUTS:
            raise ValueError(f"unsupported output function {self.output!r}")
        if self.coef.ndim != 2 or self.coef.shape[0] != features or self.intercept.shape != (self.coef.shape[1],):
            raise ValueError(f"coef {self.coef.shape} and intercept {self.intercept.shape} do not fit {features} features")
        if (self.output == "binary") != (self.coef.shape[1] == 1):
            raise ValueError(f"a {self.output!r} output cannot have {self.coef.shape[1]} column(s)")
        if self.calibration is not None and (self.calibration.kind == "per_label") != (self.output == "sigmoid"):
            raise ValueError(f"a {self.calibration.kind} calibration does not fit a {self.output!r} output")

    @property
    def n_classes(self) -> int:
        """Columns of `predict_proba`."""
        return 2 if self.output == "binary" else self.coef.shape[1]

    def decision_function(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_outputs) decision values."""
        decisions = np.tile(self.intercept, (len(texts), 1))
        offset = 0
        for block in self.blocks:
            rows, columns, values = block.scaled_counts(texts)
            if len(rows):
                contributions = self.coef[columns + offset] * values[:, None]
                starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
                decisions[rows[starts]] += np.add.reduceat(contributions, starts, axis=0)
            offset += block.size
        return decisions

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_classes) probabilities: the scikit-learn pipeline's `predict_proba`, then
        the calibration if there is one."""
        probabilities = self.uncalibrated_proba(texts)
        return probabilities if self.calibration is None else self.calibration.apply(probabilities)

    def uncalibrated_proba(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), n_classes) probabilities exactly as the scikit-learn pipeline's `predict_proba`."""
        decisions = self.decision_function(texts)
        if self.output == "softmax":
            decisions -= decisions.max(axis=1, keepdims=True)
            np.exp(decisions, out=decisions)
            return decisions / decisions.sum(axis=1, keepdims=True)
        with np.errstate(over="ignore"):
            positive = 1.0 / (1.0 + np.exp(-decisions))
        return np.hstack([1.0 - positive, positive]) if self.output == "binary" else positive


def dumps(models: Mapping[str, CompactModel]) -> bytes:
    """The ``.npz`` bytes of a version's compact models (control name → model)."""
    arrays: dict[str, np.ndarray] = {}
    controls = []
    for i, (name, model) in enumerate(models.items()):
        arrays[f"c{i}.coef"], arrays[f"c{i}.intercept"] = model.coef, model.intercept
        blocks = []
        for j, block in enumerate(model.blocks):
            terms = list(block.terms)
            separator = next((s for s in SEPARATORS if not any(s in term for term in terms)), None)
            if separator is None or len(block.vocabulary) != len(terms):
                raise ValueError(f"control {name!r}: the vocabulary cannot be stored (repeated terms, or no separator)")
            arrays[f"c{i}.b{j}.terms"] = _utf8(separator.join(terms))
            if block.idf is not None:
                arrays[f"c{i}.b{j}.idf"] = block.idf
            if block.index is not None:
                arrays[f"c{i}.b{j}.tokens"] = _utf8(separator.join(block.index.token_ids))
                arrays[f"c{i}.b{j}.keys"], arrays[f"c{i}.b{j}.columns"] = block.index.keys, block.index.columns
            analyzer = block.analyzer
            blocks.append(
                {
                    "analyzer": analyzer.kind, "ngram_range": list(analyzer.ngram_range), "lowercase": analyzer.lowercase,
                    "strip_accents": analyzer.strip_accents, "token_pattern": analyzer.token_pattern,
                    "stop_words": sorted(analyzer.stop_words) if analyzer.stop_words else None,
                    "separator": separator, "n_terms": len(terms), "idf": block.idf is not None,
                    "sublinear_tf": block.sublinear_tf, "binary": block.binary, "norm": block.norm,
                    "index": block.index is not None,
                }
            )
        calibration = model.calibration
        if calibration is not None:
            arrays[f"c{i}.calibration"] = np.vstack([calibration.slope, calibration.intercept])
        controls.append({"name": name, "output": model.output, "blocks": blocks, "calibration": calibration and calibration.kind})
    header = json.dumps({"format": FORMAT, "controls": controls}, ensure_ascii=False).encode("utf-8")
    arrays["header"] = np.frombuffer(header, dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def loads(data: bytes) -> dict[str, CompactModel]:
    """Read `dumps` output back, executing nothing: arrays only, shapes checked.

    Raises:
        CorruptModel: not a compact model file, another format version, or inconsistent shapes.
    """
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(arrays.pop("header").tobytes().decode("utf-8"))
        if header.get("format") not in READABLE:
            raise CorruptModel(f"unknown compact model format {header.get('format')!r} (expected {FORMAT})")
        return {
            control["name"]: _model(arrays, f"c{i}", control) for i, control in enumerate(header["controls"])
        }
    except CorruptModel:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptModel(f"the compact model cannot be read: {type(error).__name__}: {error}") from error


def _model(arrays: dict[str, np.ndarray], prefix: str, control: dict[str, Any]) -> CompactModel:
    blocks = []
    for j, spec in enumerate(control["blocks"]):
        name = f"{prefix}.b{j}"
        terms = PackedTerms(_text(arrays[f"{name}.terms"]), spec["separator"], spec["n_terms"])
        analyzer = Analyzer(
            spec["analyzer"], tuple(spec["ngram_range"]), bool(spec["lowercase"]), spec["strip_accents"],
            spec["token_pattern"], frozenset(spec["stop_words"]) if spec["stop_words"] else None,
        )
        idf = _floats(arrays[f"{name}.idf"]) if spec["idf"] else None
        index = None
        if spec["index"]:
            tokens = _text(arrays[f"{name}.tokens"]).split(spec["separator"])
            token_ids = dict(zip(tokens, range(1, len(tokens) + 1)))
            index = WordIndex(token_ids, arrays[f"{name}.keys"], arrays[f"{name}.columns"], analyzer.ngram_range)
        blocks.append(FeatureBlock(analyzer, terms, idf, bool(spec["sublinear_tf"]), bool(spec["binary"]), spec["norm"], index))
    calibration = None
    if control.get("calibration"):
        slope, intercept = _floats(arrays[f"{prefix}.calibration"])
        calibration = Calibration(control["calibration"], slope, intercept)
    return CompactModel(
        tuple(blocks), _floats(arrays[f"{prefix}.coef"]), _floats(arrays[f"{prefix}.intercept"]), control["output"], calibration
    )


def _utf8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _text(array: np.ndarray) -> str:
    if array.dtype != np.uint8:
        raise ValueError(f"expected UTF-8 bytes, found {array.dtype}")
    return array.tobytes().decode("utf-8")


def _floats(array: np.ndarray) -> np.ndarray:
    if array.dtype != np.float64:
        raise ValueError(f"expected float64 arrays, found {array.dtype}")
    return array
