import numpy as np
import pytest

from functions.model import compact
from functions.model.calibration import IDENTITY, Calibration, fit_per_label, fit_platt, fit_top_label
from functions.model.quality import reliability


def overconfident(n=4000, seed=0):
    """Top scores whose true accuracy is σ(0.5·logit(score)): over-confident above 0.5."""
    rng = np.random.default_rng(seed)
    top = rng.uniform(0.34, 0.999, n)
    second = (1 - top) * rng.uniform(0.5, 1.0, n)
    probabilities = np.column_stack([top, second, 1 - top - second])
    logit = np.log(top / (1 - top))
    right = rng.uniform(size=n) < 1 / (1 + np.exp(-0.5 * logit))
    truth = np.where(right, 0, 1)
    return probabilities, truth


def test_platt_recovers_the_slope_and_intercept_that_generated_the_labels():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 3, 20000)
    positive = rng.uniform(size=scores.size) < 1 / (1 + np.exp(-(0.7 * scores - 0.4)))
    a, b = fit_platt(scores, positive)
    assert a == pytest.approx(0.7, abs=0.05) and b == pytest.approx(-0.4, abs=0.06)


def test_platt_falls_back_to_identity_for_one_sided_or_inverted_scores():
    scores = np.linspace(-3, 3, 100)
    assert fit_platt(scores, np.ones(100, bool)) == IDENTITY
    assert fit_platt(scores, scores < 0) == IDENTITY  # higher score, less often right: no monotone map


def test_top_label_calibration_lowers_the_error_and_keeps_every_choice():
    probabilities, truth = overconfident()
    calibration = fit_top_label(probabilities, truth)
    calibrated = calibration.apply(probabilities)
    correct = probabilities.argmax(1) == truth
    assert np.array_equal(calibrated.argmax(1), probabilities.argmax(1))
    assert np.allclose(calibrated.sum(1), 1.0)
    before, after = reliability(probabilities.max(1), correct)[0], reliability(calibrated.max(1), correct)[0]
    assert before > 0.08 and after < 0.03
    assert calibration.slope[0] == pytest.approx(0.5, abs=0.1)


def test_a_two_class_score_never_drops_below_one_half():
    calibration = Calibration("top_label", np.array([1.0]), np.array([-3.0]))
    calibrated = calibration.apply(np.array([[0.6, 0.4], [0.2, 0.8], [1.0, 0.0]]))
    assert calibrated.max(1) == pytest.approx([0.5, 0.5, 1.0], abs=1e-9)  # floored at 1/2, or kept near 1
    assert np.array_equal(calibrated.argmax(1), [0, 1, 0]) and np.allclose(calibrated.sum(1), 1.0)


def test_per_label_calibration_maps_each_label_on_its_own():
    rng = np.random.default_rng(2)
    p = rng.uniform(0.01, 0.99, (5000, 2))
    truth = np.column_stack([rng.uniform(size=5000) < p[:, 0], rng.uniform(size=5000) < p[:, 1] ** 2]).astype(int)
    calibration = fit_per_label(p, truth)
    assert calibration.slope[0] == pytest.approx(1.0, abs=0.1) and calibration.intercept[0] == pytest.approx(0.0, abs=0.1)
    calibrated = calibration.apply(p)
    assert reliability(calibrated[:, 1], truth[:, 1].astype(bool))[0] < reliability(p[:, 1], truth[:, 1].astype(bool))[0]


def as_format_2(data: bytes) -> bytes:
    """A format-3 npz without calibration rewritten as the format-2 file an older release stored."""
    import io
    import json

    with np.load(io.BytesIO(data)) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(arrays["header"].tobytes())
    header["format"] = "ls-textcls-compact/2"
    for control in header["controls"]:
        control.pop("calibration")
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_calibrated_compact_model_round_trips_through_npz_and_format_2_still_loads(tmp_path):
    from functions.model.classifier import fit
    from functions.model.export import to_compact
    from functions.settings import ModelParams

    texts = ["good match", "great goal", "rain storm", "snow wind", "final whistle", "cold front"]
    model = to_compact(fit(texts, ["Sport", "Sport", "Weather", "Weather", "Sport", "Weather"], ModelParams()).pipeline)
    calibrated = compact.CompactModel(model.blocks, model.coef, model.intercept, model.output,
                                      Calibration("top_label", np.array([0.5]), np.array([0.2])))
    loaded = compact.loads(compact.dumps({"c": calibrated}))["c"]
    assert np.allclose(loaded.predict_proba(texts), calibrated.predict_proba(texts))
    assert not np.allclose(loaded.predict_proba(texts), model.predict_proba(texts))
    assert np.allclose(loaded.uncalibrated_proba(texts), model.predict_proba(texts))

    older = as_format_2(compact.dumps({"c": model}))
    assert np.allclose(compact.loads(older)["c"].predict_proba(texts), model.predict_proba(texts))
    with pytest.raises(ValueError, match="does not fit"):
        compact.CompactModel(model.blocks, model.coef, model.intercept, model.output, Calibration("per_label", np.ones(2), np.zeros(2)))
