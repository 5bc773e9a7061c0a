"""The model card's SVG charts and HTML page: well-formed, hostile label names escaped, numbers
formatted, and every part an older or smaller version lacks explained instead of failing."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from functions.model_card import charts as charts_module
from functions.model_card.charts import render_charts
from functions.model_card.markup import text
from functions.model_card.page import render_page
from tests.card_samples import LABELS, MATRIX, ONLOAD, SCRIPT, control_report, manifest_body

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = [SCRIPT, ONLOAD, "'single' & <b>", "nul\x00 bell\x07 surrogate\ud800 end", "\u202eright-to-left"]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on anything that is not well-formed XML
    assert root.tag == SVG + "svg"
    assert float(root.get("width")) > 0 and float(root.get("height")) > 0
    return root


def assert_inert(root: ET.Element) -> None:
    """No element that runs code, no event-handler attribute, no external reference."""
    for element in root.iter():
        assert element.tag.split("}")[-1] not in {"script", "foreignObject", "a", "image", "use", "iframe"}
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (element.tag, name)
            assert "javascript:" not in value.lower() and "href" not in name


def texts(root: ET.Element, css: str) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(SVG + "text") if e.get("class") == css]


def test_a_full_report_gives_three_small_well_formed_charts():
    charts = render_charts(control_report())
    assert set(charts) == {"confusion", "reliability", "auto_label"}
    for name, svg in charts.items():
        root = parse(svg)
        assert_inert(root)
        assert name in root.get("class").split()
        assert len(svg) < 40_000
    assert "unavailable" not in " ".join(parse(svg).get("class") for svg in charts.values())


def test_the_confusion_matrix_shows_every_count_in_row_order():
    root = parse(render_charts(control_report())["confusion"])
    assert texts(root, "count") == [str(n) for row in MATRIX for n in row]
    assert len([g for g in root.iter(SVG + "g") if g.get("class") == "cell"]) == 16
    assert "".join(root.itertext()).count("5,280 tasks") == 1


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_label_names_are_escaped_in_every_chart(hostile):
    report = control_report()
    labels = ["Sports", hostile]
    report["quality"]["confusion"] = {"labels": labels, "matrix": [[5, 1], [2, 7]]}
    report["quality"]["calibration"]["method"] = hostile
    for svg in render_charts(report).values():
        root = parse(svg)
        assert_inert(root)
        assert "<script" not in svg and '"onload' not in svg and "\x00" not in svg
        svg.encode("utf-8")  # no lone surrogate left: the chart can be stored
    confusion = parse(render_charts(report)["confusion"])
    shown = texts(confusion, "row-label")[1]
    assert shown == text(hostile, charts_module.LABEL_CHARS).replace("&lt;", "<").replace("&gt;", ">").replace(
        "&quot;", '"').replace("&#x27;", "'").replace("&amp;", "&")


def test_long_label_names_are_cut_and_kept_whole_in_the_tooltips():
    report = control_report()
    long = "A very long label name that goes on and on"
    report["quality"]["confusion"] = {"labels": [long, "B"], "matrix": [[5, 1], [2, 7]]}
    root = parse(render_charts(report)["confusion"])
    assert texts(root, "row-label")[0] == long[: charts_module.LABEL_CHARS - 1] + "\u2026"
    assert any(long in "".join(title.itertext()) for title in root.iter(SVG + "title"))


def test_a_large_confusion_matrix_shows_the_most_annotated_labels_and_says_so():
    n = charts_module.MAX_LABELS + 5
    matrix = [[(i + 1) * 10 if i == j else 1 for j in range(n)] for i in range(n)]
    report = control_report()
    report["quality"]["confusion"] = {"labels": [f"label {i}" for i in range(n)], "matrix": matrix}
    svg = render_charts(report)["confusion"]
    root = parse(svg)
    assert texts(root, "row-label") == [f"label {i}" for i in range(5, n)]  # the 5 least annotated are left out
    assert f"the {charts_module.MAX_LABELS} most annotated of {n} labels" in "".join(root.itertext())
    assert len(svg) < 400_000


@pytest.mark.parametrize(
    "confusion",
    [
        {"labels": ["a", "b"], "matrix": [[1, 2]]},  # not square
        {"labels": ["a", "b"], "matrix": [[1, "2\"/><script>"], [3, 4]]},  # a string where a count goes
        {"labels": ["a", "b"], "matrix": [[1, -2], [3, 4]]},
        {"labels": ["a", "b"], "matrix": [[1, float("nan")], [3, 4]]},
        {"labels": ["a", "b"], "matrix": [[True, 2], [3, 4]]},
        {"labels": "ab", "matrix": []},
        "garbage",
    ],
)
def test_a_malformed_confusion_matrix_gives_a_chart_that_says_so(confusion):
    report = control_report()
    report["quality"]["confusion"] = confusion
    svg = render_charts(report)["confusion"]
    root = parse(svg)
    assert "unavailable" in root.get("class") and "malformed" in "".join(root.itertext())
    assert "<script" not in svg


def test_malformed_numbers_never_reach_the_markup():
    report = control_report()
    bins = report["quality"]["calibration"]["reliability"]
    bins[5] |= {"confidence": '0.5"/><script>alert(1)</script>', "accuracy": float("inf")}
    bins[6] |= {"count": "many"}
    report["auto_label"]["curve"][3] = {"threshold": "<b>", "coverage": 0.2, "accuracy": 0.9}
    report["auto_label"]["threshold"] = "0.9<script>"
    report["quality"]["calibration"]["ece"] = float("nan")
    charts = render_charts(report)
    for svg in charts.values():
        assert_inert(parse(svg))
        assert "<script" not in svg and "nan" not in svg.lower().replace("nan\u00a0", "")
    assert "ECE \u2014" in "".join(parse(charts["reliability"]).itertext())  # NaN is shown as a dash


def test_an_older_report_gives_three_charts_that_say_why_they_are_empty():
    charts = render_charts({"examples": 40, "labels": {"a": 20, "b": 20}, "dropped": {}, "quality": {"pending": "…"}})
    for name, svg in charts.items():
        root = parse(svg)
        assert root.get("class") == f"chart {name} unavailable"
        assert "trained before model cards" in "".join(root.itertext())


@pytest.mark.parametrize("value", [None, [], "x", 3])
def test_render_charts_takes_anything_without_raising(value):
    assert set(render_charts(value)) == {"confusion", "reliability", "auto_label"}


def test_a_multiple_choice_control_has_no_confusion_matrix_and_says_why():
    report = control_report()
    quality = report["quality"]
    del quality["confusion"], quality["accuracy"]
    quality |= {"micro_f1": 0.81, "exact_match": 0.66}
    root = parse(render_charts(report)["confusion"])
    assert "multiple-choice" in "".join(root.itertext())


def test_no_calibration_fitted_is_said_so():
    report = control_report()
    report["quality"]["calibration"] = None
    root = parse(render_charts(report)["reliability"])
    assert "no calibration was fitted" in "".join(root.itertext())


def test_the_reliability_diagram_draws_the_diagonal_and_both_curves_with_their_ece():
    root = parse(render_charts(control_report())["reliability"])
    classes = [e.get("class") for e in root.iter(SVG + "polyline")]
    assert classes == ["before", "after"]
    words = "".join(root.itertext())
    assert "ECE 0.067" in words and "ECE 0.015" in words
    assert len(list(root.iter(SVG + "circle"))) == 2 * 12  # the non-empty bins of each curve


def test_the_auto_label_chart_marks_the_threshold_or_says_none_reaches_the_target():
    report = control_report()
    words = "".join(parse(render_charts(report)["auto_label"]).itertext())
    assert "threshold 0.895" in words and "61.6\u00a0%" in words and "target 95.0\u00a0%" in words
    report["auto_label"] |= {"threshold": None, "coverage": 0.0, "estimated_accuracy": None}
    for point in report["auto_label"]["curve"][:5]:
        point["accuracy"] = None  # no task reaches the highest thresholds
    words = "".join(parse(render_charts(report)["auto_label"]).itertext())
    assert "no threshold reaches the 95.0\u00a0% target" in words and "threshold 0." not in words


# -- the page ------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag and attribute of a page, to check that nothing executable got in."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def page_tags(page: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = Tags()
    parser.feed(page)
    return parser.tags


def full_manifest(control=None) -> dict:
    return manifest_body(control) | {"version": "p12-v3", "number": 3, "project": "12", "job_id": "0" * 32,
                                     "created_at": "2026-01-02T03:04:05+00:00"}


def assert_page_inert(page: str) -> None:
    for tag, attrs in page_tags(page):
        assert tag not in {"script", "iframe", "object", "embed", "link", "img", "a", "foreignobject", "base", "form"}, tag
        assert not any(name.startswith("on") for name, _ in attrs), (tag, attrs)
    assert "<script" not in page.lower() and '"onload' not in page


def test_the_page_shows_the_version_counts_quality_calibration_auto_label_and_suspects():
    charts = {"topic": render_charts(control_report())}
    page = render_page(full_manifest(), charts)
    assert_page_inert(page)
    assert "<title>Model card p12-v3 (project 12)</title>" in page
    for expected in ["2026-01-02T03:04:05+00:00", "0" * 32, "5,300", "20 skipped", "5,280 examples", "3 empty",
                     "88.1\u00a0%", "0.067", "0.015", "top_label_platt", "0.895", "61.6\u00a0%", "95.6\u00a0%", "1234",
                     "61 flagged", "C=10.0", "12.3\u00a0s"]:
        assert expected in page, expected
    assert page.count("<svg") == 3 and [tag for tag, _ in page_tags(page)].count("figure") == 3


def test_hostile_values_are_escaped_everywhere_on_the_page():
    control = control_report()
    control["labels"]["'quoted' & <i>"] = 1
    manifest = full_manifest(control) | {"job_id": SCRIPT, "created_at": ONLOAD}
    manifest["report"]["controls"] = {SCRIPT: control}
    manifest["params"] = {ONLOAD: SCRIPT}
    page = render_page(manifest, {SCRIPT: render_charts(control)}, note=SCRIPT)
    assert_page_inert(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;onload=alert(2) x=&quot;" in page
    assert "&#x27;quoted&#x27; &amp; &lt;i&gt;" in page
    assert "x" * 250 not in page  # suspect texts are cut to 200 characters
    assert "<td>None</td>" not in page  # a suspect without a task id shows a dash


def test_charts_that_are_not_svg_are_left_out():
    charts = {"topic": {"confusion": SCRIPT, "reliability": "<svg onload=alert(1)>", "auto_label": 3}}
    page = render_page(full_manifest(), charts)
    assert_page_inert(page)
    assert "<svg" not in page and "No charts stored for this control." in page


def test_an_older_manifest_renders_with_notes_instead_of_the_new_parts():
    old = {"version": "p4-v1", "number": 1, "project": "4", "job_id": "a" * 32, "created_at": "2025-01-01T00:00:00+00:00",
           "report": {"tasks_seen": 40, "dropped": {}, "controls": {"topic": {"examples": 40, "labels": {"a": 20, "b": 20},
                                                                                 "dropped": {}, "quality": {"pending": "measured on a hold-out after publishing"}}}}}
    page = render_page(old, {}, note="This version was published without charts.")
    assert_page_inert(page)
    assert "This version was published without charts." in page
    assert page.count("Not recorded in this version") == 4  # quality, calibration, auto-label, suspects
    assert "measured on a hold-out after publishing" in page and "No charts stored" in page


@pytest.mark.parametrize("manifest", [{}, None, {"report": "x"}, {"report": {"controls": {"t": "x"}}}])
def test_the_page_takes_any_manifest_without_raising(manifest):
    page = render_page(manifest, {})
    assert page.startswith("<!DOCTYPE html>") and page.endswith("</html>")


def test_multiple_choice_suspects_and_missing_thresholds_read_well():
    control = control_report()
    control["quality"] = {"method": "5-fold", "micro_f1": 0.81, "macro_f1": 0.77, "exact_match": 0.66, "calibration": None}
    control["auto_label"] |= {"threshold": None, "coverage": 0.0, "estimated_accuracy": None}
    control["suspects"] = [{"task": 7, "given": ["a", "b"], "suggested": ["c"], "confidence": 0.9, "text": "t"}]
    page = render_page(full_manifest(control), {})
    assert "<td>a, b</td><td>c</td>" in page
    assert "No score threshold reaches the target accuracy of 95.0\u00a0%" in page
    assert "No calibration fitted" in page and "81.0\u00a0%" in page and "66.0\u00a0%" in page
    control["suspects"], control["suspects_note"] = [], "suspects are listed for single-choice controls only"
    page = render_page(full_manifest(control), {})
    assert "suspects are listed for single-choice controls only" in page


def test_every_label_of_the_sample_is_in_the_labels_table():
    page = render_page(full_manifest(), {})
    for label in LABELS:
        assert f"<td>{text(label)}</td>" in page
