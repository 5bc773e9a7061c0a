"""The model card's three charts for one control, rendered at training time as SVG documents.

`render_charts(control_report)` takes one control's report (``manifest["report"]["controls"][name]``:
``quality.confusion``, ``quality.calibration.reliability(_before)``, ``auto_label.curve`` and
``auto_label.threshold``; shapes in the issue-10 contract) and returns
``{"confusion": svg, "reliability": svg, "auto_label": svg}``, always all three keys: a part the
report lacks (an older version, a multiple-choice control without a confusion matrix, no
calibration fitted, no threshold reaching the target, a malformed value) gives a small chart
that says so, never an exception. Label names and every other string are escaped, numbers are
formatted (`functions.model_card.svg`); nothing from the report is injected raw.

Sizes: a few KB per chart; the confusion matrix draws at most `MAX_LABELS` labels (the most
annotated ones; the chart says so when it leaves some out).
"""

from __future__ import annotations

import math
from typing import Any

from functions.model_card import svg
from functions.model_card.markup import count, decimal, number, percent, short_count
from functions.model_card.svg import AXIS, MUTED, Frame

MAX_LABELS = 30
LABEL_CHARS = 18  # longer label names are cut (the cell tooltips carry them whole)
BEFORE, AFTER = "#8c8c8c", "#1f6fb4"
COVERAGE, ACCURACY, TARGET, THRESHOLD = "#e6751a", "#1f6fb4", "#c0392b", "#333333"
Bins = list[tuple[float, float, int, float, float]]  # (confidence, accuracy, count, lower, upper)


def render_charts(control_report: dict) -> dict[str, str]:
    """The three SVG documents of one control's report (see the module docstring)."""
    report = control_report if isinstance(control_report, dict) else {}
    quality = report.get("quality") if isinstance(report.get("quality"), dict) else {}
    return {
        "confusion": confusion_chart(quality),
        "reliability": reliability_chart(quality),
        "auto_label": auto_label_chart(report.get("auto_label")),
    }


# -- confusion matrix ----------------------------------------------------------------------


def confusion_chart(quality: dict[str, Any]) -> str:
    """A heat map of ``quality.confusion`` (rows annotated, columns predicted) with the counts;
    cells are shaded by their share of the row (the recall of the row's label on the diagonal)."""
    title = "Confusion matrix"
    if "confusion" not in quality:
        multiple = any(key in quality for key in ("exact_match", "micro_f1"))
        why = ("this is a multiple-choice control: its labels are not exclusive, so there is no single confusion matrix"
               if multiple else "this version's report has no out-of-fold confusion matrix (trained before model cards)")
        return svg.unavailable("confusion", title, why)
    parsed = _confusion(quality["confusion"])
    if parsed is None:
        return svg.unavailable("confusion", title, "the confusion matrix in this version's report is malformed")
    labels, matrix = parsed
    shown = _most_annotated(matrix, MAX_LABELS)
    n = len(shown)
    cell = max(16.0, min(44.0, 352.0 // n))
    count_size = max(6.0, min(12.0, cell * 0.3))
    label_width = 6.2 * min(max(len(labels[i]) for i in shown), LABEL_CHARS) + 6
    top = 48.0 if n < len(labels) else 34.0
    left = 24 + label_width
    grid = n * cell
    width = max(left + grid + 14, 260.0)
    height = top + grid + label_width * 0.72 + 34
    total = sum(sum(row) for row in matrix)
    body = [svg.label(8, 14, f"{title} ({total:,} tasks, out-of-fold)", weight="600")]
    if n < len(labels):
        body.append(svg.label(8, 30, f"the {n} most annotated of {len(labels)} labels", fill=MUTED, size=10))
    for r, i in enumerate(shown):
        row_total = sum(matrix[i])
        y = top + r * cell
        body.append(svg.label(left - 6, y + cell / 2, labels[i], anchor="end", limit=LABEL_CHARS, css="row-label"))
        for c, j in enumerate(shown):
            value = matrix[i][j]
            share = value / row_total if row_total else 0.0
            x = left + c * cell
            tooltip = f"annotated {labels[i]}, predicted {labels[j]}: {value:,} ({percent(share)} of {labels[i]})"
            body.append(
                f'<g class="cell" data-row="{r}" data-col="{c}"><title>{svg.text(tooltip)}</title>'
                + svg.rect(x, y, cell, cell, _blue(share), "#333333" if i == j else "#ffffff", 1.2 if i == j else 1)
                + svg.label(x + cell / 2, y + cell / 2, short_count(value), anchor="middle", size=count_size,
                            fill="#ffffff" if share > 0.45 else "#1a1a1a", css="count")
                + "</g>"
            )
    for c, j in enumerate(shown):
        x, y = left + c * cell + cell / 2, top + grid + 6
        body.append(svg.label(x, y, labels[j], anchor="end", rotate=-45, limit=LABEL_CHARS, css="column-label"))
    body.append(svg.label(10, top + grid / 2, "annotated", anchor="middle", rotate=-90, fill=MUTED))
    body.append(svg.label(left + grid / 2, height - 10, "predicted", anchor="middle", fill=MUTED))
    return svg.document("confusion", width, height, f"{title}: rows annotated label, columns predicted label", body)


def _confusion(value: Any) -> tuple[list[str], list[list[int]]] | None:
    """(labels, square matrix of counts), or None when `value` is not that shape."""
    if not isinstance(value, dict) or not isinstance(value.get("labels"), list) or not isinstance(value.get("matrix"), list):
        return None
    labels = [str(name) for name in value["labels"]]
    rows = value["matrix"]
    if not labels or len(rows) != len(labels) or any(not isinstance(row, list) or len(row) != len(labels) for row in rows):
        return None
    matrix = [[count(cell) for cell in row] for row in rows]
    if any(cell is None for row in matrix for cell in row):
        return None
    return labels, matrix  # type: ignore[return-value]


def _most_annotated(matrix: list[list[int]], limit: int) -> list[int]:
    """Indices of the `limit` labels with the most annotations (all of them if few), in label order."""
    if len(matrix) <= limit:
        return list(range(len(matrix)))
    ranked = sorted(range(len(matrix)), key=lambda i: (-sum(matrix[i]), i))
    return sorted(ranked[:limit])


def _blue(share: float) -> str:
    """White to dark blue for a share in 0..1."""
    stops = ((0.0, (247, 251, 255)), (0.5, (107, 174, 214)), (1.0, (8, 48, 107)))
    share = min(max(share, 0.0), 1.0)
    for (s0, c0), (s1, c1) in zip(stops, stops[1:]):
        if share <= s1:
            t = (share - s0) / (s1 - s0)
            return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(c0, c1))
    return "#08306b"


# -- reliability diagram -------------------------------------------------------------------


def reliability_chart(quality: dict[str, Any]) -> str:
    """Accuracy against mean score per score bin, before and after calibration, with the
    diagonal (perfect calibration) and each curve's expected calibration error (ECE)."""
    title = "Reliability diagram"
    if "calibration" not in quality:
        return svg.unavailable("reliability", title, "this version's report has no calibration (trained before model cards)")
    calibration = quality["calibration"]
    if not isinstance(calibration, dict):
        return svg.unavailable("reliability", title, "no calibration was fitted (too few examples): scores are the model's own probabilities")
    method = calibration.get("method")
    before, after = _bins(calibration.get("reliability_before")), _bins(calibration.get("reliability"))
    curves: list[tuple[str, Bins, str, str | None]] = []
    if before:
        curves.append((f"before calibration, ECE {decimal(calibration.get('ece_before'))}", before, BEFORE, "5 3"))
    if after and method:
        curves.append((f"after ({str(method)[:24]}), ECE {decimal(calibration.get('ece'))}", after, AFTER, None))
    elif after and not before:
        curves.append((f"served scores (not calibrated), ECE {decimal(calibration.get('ece'))}", after, AFTER, None))
    if not curves:
        return svg.unavailable("reliability", title, "this version's report holds no reliability bins")
    frame = Frame(left=48, top=30, width=240, height=240)
    ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    body = [svg.label(8, 14, title, weight="600"), *frame.axes(ticks, ticks, "score (mean per bin)", "accuracy")]
    body.append(svg.line(frame.x(0), frame.y(0), frame.x(1), frame.y(1), AXIS, dash="2 3"))
    for name, bins, color, dash in curves:
        css = "before" if color == BEFORE else "after"
        body.append(svg.polyline([(frame.x(c), frame.y(a)) for c, a, *_ in bins], color, dash=dash, css=css))
        for confidence, accuracy, n, lower, upper in bins:
            tip = f"scores {lower:.2f}\u2013{upper:.2f}: {n:,} tasks, mean score {confidence:.3f}, accuracy {accuracy:.3f}"
            body.append(svg.circle(frame.x(confidence), frame.y(accuracy), 3, "#ffffff" if dash else color, color, tip))
    legend_top = frame.bottom + 48
    for k, (name, _, color, dash) in enumerate(curves):
        y = legend_top + 16 * k
        body += [svg.line(16, y, 36, y, color, width=2, dash=dash), svg.label(42, y, name)]
    return svg.document("reliability", 320, legend_top + 16 * len(curves), title, body)


def _bins(value: Any) -> Bins:
    """The non-empty bins of a reliability list, by mean score; malformed items are skipped."""
    found = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict):
            continue
        confidence, accuracy, n = number(item.get("confidence")), number(item.get("accuracy")), count(item.get("count"))
        if confidence is None or accuracy is None or not n:
            continue
        lower, upper = number(item.get("lower")), number(item.get("upper"))
        found.append((confidence, accuracy, n, confidence if lower is None else lower, confidence if upper is None else upper))
    return sorted(found)


# -- auto-label curve ----------------------------------------------------------------------


def auto_label_chart(auto_label: Any) -> str:
    """Coverage and accuracy of the out-of-fold predictions whose score reaches each threshold,
    with the accuracy target (horizontal) and the chosen threshold (vertical)."""
    title = "Auto-labelling: coverage and accuracy by threshold"
    if not isinstance(auto_label, dict):
        return svg.unavailable("auto_label", title, "this version's report has no auto-label threshold (trained before model cards)")
    points = _curve(auto_label.get("curve"))
    if not points:
        return svg.unavailable("auto_label", title, "this version's report holds no coverage/accuracy curve")
    target, threshold = number(auto_label.get("target")), number(auto_label.get("threshold"))
    lowest = min([t for t, *_ in points] + ([threshold] if threshold is not None else []))
    x0 = min(max(math.floor(lowest * 10) / 10, 0.0), 0.9)
    step = 0.1 if 1 - x0 <= 0.6 + 1e-9 else 0.2
    x_ticks = [round(x0 + k * step, 2) for k in range(int(round((1 - x0) / step)) + 1)]
    frame = Frame(left=48, top=30, width=300, height=200, x0=x0, x1=1.0)
    body = [svg.label(8, 14, title, weight="600"),
            *frame.axes(x_ticks, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "score threshold", "share")]
    body.append(svg.polyline(_pixels(frame, [(t, c) for t, c, _ in points]), COVERAGE, css="coverage"))
    for segment in _segments([(t, a) for t, _, a in points]):
        body.append(svg.polyline(_pixels(frame, segment), ACCURACY, css="accuracy"))
    if target is not None:
        body.append(svg.line(frame.left, frame.y(target), frame.right, frame.y(target), TARGET, dash="5 3"))
        body.append(svg.label(frame.left + 4, frame.y(target) - 8, f"target {percent(target)}", fill=TARGET, size=10))
    coverage, estimated = number(auto_label.get("coverage")), number(auto_label.get("estimated_accuracy"))
    if threshold is not None:
        x = frame.x(threshold)
        left_of_line = threshold > (x0 + 1) / 2
        body += [svg.line(x, frame.top, x, frame.bottom, THRESHOLD, width=1.5),
                 svg.label(x - 4 if left_of_line else x + 4, frame.bottom - 10, f"threshold {decimal(threshold)}",
                           anchor="end" if left_of_line else "start", size=10)]
        if coverage is not None:
            body.append(svg.circle(x, frame.y(coverage), 3.5, COVERAGE, COVERAGE, f"coverage {percent(coverage)}"))
        if estimated is not None:
            body.append(svg.circle(x, frame.y(estimated), 3.5, ACCURACY, ACCURACY, f"estimated accuracy {percent(estimated)}"))
        summary = [f"auto-label when score \u2265 {decimal(threshold)}:",
                   f"{percent(coverage)} of tasks, estimated accuracy {percent(estimated)}"]
    else:
        summary = [f"no threshold reaches the {percent(target)} target:", "nothing is auto-labelled"]
    legend_top = frame.bottom + 48
    body += [svg.line(16, legend_top, 36, legend_top, COVERAGE, width=2), svg.label(42, legend_top, "coverage (share of tasks at or above)"),
             svg.line(16, legend_top + 16, 36, legend_top + 16, ACCURACY, width=2), svg.label(42, legend_top + 16, "accuracy of those tasks")]
    body += [svg.label(16, legend_top + 36 + 15 * k, line, weight="600", css="summary") for k, line in enumerate(summary)]
    return svg.document("auto_label", 360, legend_top + 60, title, body)


def _curve(value: Any) -> list[tuple[float, float, float | None]]:
    """(threshold, coverage, accuracy or None) points by threshold; malformed items are skipped."""
    found = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and number(item.get("threshold")) is not None and number(item.get("coverage")) is not None:
            found.append((number(item["threshold"]), number(item["coverage"]), number(item.get("accuracy"))))
    return sorted(found, key=lambda point: point[0])  # type: ignore[arg-type, return-value]


def _segments(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of points with a value (accuracy is None where no task reaches the threshold)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if y is None:
            runs.append([])
        else:
            runs[-1].append((x, y))
    return [run for run in runs if run]


def _pixels(frame: Frame, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(frame.x(x), frame.y(y)) for x, y in points]
