"""The model card of one version as a self-contained HTML page (no scripts, no external assets).

`render_page(manifest, charts, note=None)` shows what the signed manifest records: the version,
project, creation time and job; the data counts (tasks seen, examples, labels and dropped per
control); per control the cross-validated quality, the calibration (ECE before/after), the
auto-label threshold (target, threshold, coverage, estimated accuracy, validated on), the top
suspect annotations, and the control's charts from ``charts.json`` (`functions.model_card.charts`,
rendered at training time; `charts` maps control → chart name → SVG). `note` is shown at the top
(e.g. why there are no charts). Parts an older version lacks say so instead of failing.

Every value from the manifest is HTML-escaped (`markup.text`) and numbers are formatted; the
charts are inlined as they are: they come from ``charts.json``, whose SHA-256 the caller has
checked against the signed manifest, and the API serves the page under a Content-Security-Policy
that runs no script. A chart that is not an ``<svg>…</svg>`` string is left out.
"""

from __future__ import annotations

from typing import Any, Iterable

from functions.model_card.markup import DASH, decimal, integer, number, percent, text

CHARTS = (
    ("confusion", "Confusion matrix of the out-of-fold predictions: rows are the annotated labels, columns the predicted ones."),
    ("reliability", "Reliability diagram: accuracy against score per score bin, before and after calibration; "
                    "the dotted diagonal is a perfectly calibrated score."),
    ("auto_label", "Coverage and accuracy of the predictions at or above each score threshold; "
                   "the vertical line is the auto-label threshold, the dashed one the target accuracy."),
)
QUALITY_KEYS = (  # (key, label, format) of quality figures, in display order
    ("accuracy", "accuracy", percent), ("macro_f1", "macro-F1", percent), ("micro_f1", "micro-F1", percent),
    ("exact_match", "exact match (every label right)", percent), ("validated_on", "validated on (tasks)", integer),
    ("folds", "folds", integer),
)
SUSPECT_TEXT_CHARS = 200
STYLE = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;margin:0 auto;max-width:1180px;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}code{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}
table{border-collapse:collapse;margin:4px 0 8px}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top;max-width:440px;overflow-wrap:anywhere}
th{background:#f5f5f5;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 16px;margin:8px 0}dl.facts dt{color:#5a5a5a}dl.facts dd{margin:0}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;margin:10px 0}.muted{color:#5a5a5a}
.blocks,.charts{display:flex;flex-wrap:wrap;gap:12px 36px;align-items:flex-start}.block{max-width:560px}
figure{margin:0;display:table}figure svg{display:block;max-width:100%;height:auto}
figcaption{display:table-caption;caption-side:bottom;font-size:12px;color:#5a5a5a;padding-top:4px}
td.text{max-width:440px;overflow-wrap:anywhere;font-size:13px}
"""


def render_page(manifest: dict, charts: dict[str, dict[str, str]], note: str | None = None) -> str:
    """The HTML page of `manifest` (a verified version manifest) with `charts` (control → chart
    name → SVG; ``{}`` for none) and an optional `note` shown at the top."""
    manifest = manifest if isinstance(manifest, dict) else {}
    charts = charts if isinstance(charts, dict) else {}
    report = _dict(manifest.get("report"))
    controls = _dict(report.get("controls"))
    version = str(manifest.get("version") or "unknown version")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Model card {text(version)} (project {text(manifest.get('project', DASH))})</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Model card <code>{text(version)}</code></h1>",
    ]
    if note:
        parts.append(f'<p class="note">{text(note)}</p>')
    parts += _header(manifest, report)
    for name, control in controls.items():
        parts += _control(str(name), _dict(control), _dict(charts.get(name)))
    if not controls:
        parts.append('<p class="note">This version\'s manifest has no per-control report.</p>')
    parts.append('<p class="muted">The same URL without <code>Accept: text/html</code> answers this version\'s manifest as JSON.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _header(manifest: dict[str, Any], report: dict[str, Any]) -> list[str]:
    facts = [
        ("version", _code(manifest.get("version"))), ("project", text(manifest.get("project", DASH))),
        ("created", text(manifest.get("created_at", DASH))), ("training job", _code(manifest.get("job_id"))),
        ("trained on", text(report.get("source", DASH))), ("tasks seen", integer(report.get("tasks_seen"))),
        ("tasks dropped", _counts(report.get("dropped"))), ("fit time", _seconds(report.get("fit_seconds"))),
        ("scikit-learn", text(manifest.get("sklearn_version", DASH))),
    ]
    problems = report.get("problems")
    if isinstance(problems, list) and problems:
        facts.append(("problems", "<br>".join(text(problem) for problem in problems[:20])))
    params = _dict(manifest.get("params"))
    scalars = [(str(key), value) for key, value in params.items() if isinstance(value, (str, int, float, bool)) or value is None]
    if scalars:
        facts.append(("model parameters", ", ".join(f"{text(key)}={text(value)}" for key, value in scalars)))
    return ['<h2>Version</h2><dl class="facts">', *(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts), "</dl>"]


def _control(name: str, control: dict[str, Any], charts: dict[str, Any]) -> list[str]:
    parts = [f'<section class="control"><h2>Control <code>{text(name)}</code></h2>', '<div class="blocks"><div class="block">', "<h3>Data</h3>"]
    parts.append(f"<p>{integer(control.get('examples'))} examples; dropped: {_counts(control.get('dropped'))}.</p>")
    labels = _dict(control.get("labels"))
    if labels:
        parts.append(_table(["label", "examples"], [[text(label), integer(n)] for label, n in labels.items()], numeric={1}, css="labels"))
    quality = _dict(control.get("quality"))
    for block in (_quality(quality), _calibration(quality), _auto_label(control.get("auto_label"))):
        parts += ['</div><div class="block">', *block]
    parts.append("</div></div>")
    parts += _charts(charts)
    parts += _suspects(control)
    parts.append("</section>")
    return parts


def _quality(quality: dict[str, Any]) -> list[str]:
    parts = ["<h3>Quality</h3>"]
    figures = [(label, fmt(quality[key])) for key, label, fmt in QUALITY_KEYS if key in quality]
    if not any(key in quality for key in ("accuracy", "macro_f1", "micro_f1", "exact_match")):
        why = quality.get("pending") or quality.get("note")
        detail = f" ({text(why)})" if isinstance(why, str) else ""
        return parts + [f'<p class="muted">Not recorded in this version\'s manifest{detail}.</p>']
    if isinstance(quality.get("method"), str):
        parts.append(f"<p>{text(quality['method'])}.</p>")
    holdout = quality.get("holdout")
    if isinstance(holdout, dict):  # versions before cross-validation: a single 80/20 hold-out
        parts.append(f"<p>Hold-out: trained on {integer(holdout.get('train'))}, scored on {integer(holdout.get('test'))} examples.</p>")
    return parts + [_table(["measure", "value"], [[label, value] for label, value in figures], numeric={1})]


def _calibration(quality: dict[str, Any]) -> list[str]:
    parts = ["<h3>Calibration</h3>"]
    if "calibration" not in quality:
        return parts + ['<p class="muted">Not recorded in this version\'s manifest.</p>']
    calibration = quality["calibration"]
    if not isinstance(calibration, dict) or not calibration.get("method"):
        return parts + ["<p>No calibration fitted (too few examples): scores are the model's own probabilities.</p>"]
    rows = [["method", text(calibration["method"])],
            ["expected calibration error before", decimal(calibration.get("ece_before"))],
            ["expected calibration error after (served scores)", decimal(calibration.get("ece"))],
            ["score bins", integer(calibration.get("bins"))]]
    return parts + [_table(["", ""], rows, numeric=set(), header=False)]


def _auto_label(auto_label: Any) -> list[str]:
    parts = ["<h3>Auto-labelling</h3>"]
    if not isinstance(auto_label, dict):
        return parts + ['<p class="muted">Not recorded in this version\'s manifest.</p>']
    threshold = number(auto_label.get("threshold"))
    if threshold is None:
        parts.append(f"<p>No score threshold reaches the target accuracy of {percent(auto_label.get('target'))} "
                     "on the validated tasks: prediction runs auto-label nothing with this version.</p>")
    else:
        parts.append(f"<p>Predictions with a score of at least <strong>{decimal(threshold)}</strong> can be accepted as "
                     f"annotations (prediction runs with <code>auto_label</code>).</p>")
    rows = [["target accuracy", percent(auto_label.get("target"))], ["threshold", decimal(threshold)],
            ["coverage (share of tasks auto-labelled)", percent(auto_label.get("coverage"))],
            ["estimated accuracy of those", percent(auto_label.get("estimated_accuracy"))],
            ["validated on (tasks)", integer(auto_label.get("validated_on"))]]
    if isinstance(auto_label.get("rule"), str):
        rows.append(["rule", text(auto_label["rule"])])
    return parts + [_table(["", ""], rows, numeric=set(), header=False)]


def _charts(charts: dict[str, Any]) -> list[str]:
    figures = []
    for key, caption in CHARTS:
        chart = charts.get(key)
        if isinstance(chart, str) and chart.lstrip().startswith("<svg") and chart.rstrip().endswith("</svg>"):
            figures.append(f'<figure class="{key}">{chart}<figcaption>{text(caption)}</figcaption></figure>')
    if not figures:
        return ['<p class="muted">No charts stored for this control.</p>']
    return ['<div class="charts">', *figures, "</div>"]


def _suspects(control: dict[str, Any]) -> list[str]:
    parts = ["<h3>Suspect annotations</h3>"]
    if "suspects" not in control:
        return parts + ['<p class="muted">Not recorded in this version\'s manifest.</p>']
    suspects = [item for item in control["suspects"] if isinstance(item, dict)] if isinstance(control["suspects"], list) else []
    found = control.get("suspects_found")
    if isinstance(control.get("suspects_note"), str):
        parts.append(f"<p>{text(control['suspects_note'])}</p>")
    if not suspects:
        return parts + ["<p>No annotation looks wrong to the model.</p>"]
    which = "The annotation" if len(suspects) == 1 else f"The {len(suspects)} annotations"
    parts.append(f"<p>{which} the model finds least plausible, most suspicious first ({integer(found)} flagged in all). "
                 "Nothing was changed: review them in Label Studio.</p>")
    rows = [[_labels(item.get("task")), _labels(item.get("given")), _labels(item.get("suggested")),
             decimal(item.get("confidence")), decimal(item.get("given_probability")),
             text(item.get("text", ""), SUSPECT_TEXT_CHARS)] for item in suspects]
    return parts + [_table(["task", "given", "suggested", "confidence", "p(given)", "text"], rows, numeric={3, 4}, css="suspects", wide={5})]


def _table(head: list[str], rows: Iterable[list[str]], numeric: set[int], header: bool = True, css: str | None = None,
           wide: set[int] | None = None) -> str:
    """A table of already escaped cells; columns in `numeric` are right-aligned, `wide` ones wrap anywhere."""
    named = f' class="{css}"' if css else ""
    lines = [f"<table{named}>"]
    if header:
        lines.append("<tr>" + "".join(f"<th>{text(cell)}</th>" for cell in head) + "</tr>")
    for row in rows:
        classes = ["n" if i in numeric else "text" if i in (wide or set()) else "" for i in range(len(row))]
        lines.append("<tr>" + "".join(f'<td class="{c}">{cell}</td>' if c else f"<td>{cell}</td>" for c, cell in zip(classes, row)) + "</tr>")
    return "".join(lines) + "</table>"


def _labels(value: Any) -> str:
    if isinstance(value, list):
        return text(", ".join(str(label) for label in value)) if value else DASH
    return DASH if value is None else text(value)


def _counts(value: Any) -> str:
    counts = _dict(value)
    if not counts:
        return "none"
    return ", ".join(f"{integer(n)} {text(reason)}" for reason, n in counts.items())


def _seconds(value: Any) -> str:
    return DASH if number(value) is None else f"{decimal(value, 1)}\u00a0s"


def _code(value: Any) -> str:
    return DASH if value is None else f"<code>{text(value)}</code>"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
