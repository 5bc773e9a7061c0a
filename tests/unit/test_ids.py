import pytest

from functions.errors import InvalidRequest, NotFound
from functions.ids import checked_job_id, checked_project_id, new_job_id, project_id


@pytest.mark.parametrize(
    "ref, expected",
    [("12.1732880000", "12"), ("12", "12"), (12, "12"), ({"id": 7, "title": "x"}, "7"), (" 0012.5 ", "12")],
)
def test_project_id_accepts_every_form_label_studio_sends(ref, expected):
    assert project_id(ref) == expected


@pytest.mark.parametrize("ref", [None, "", "../etc", "12/../../x", "abc", -1, True, {"id": "x"}, 1.5, "1" * 19])
def test_project_id_rejects_anything_else_with_a_hint(ref):
    with pytest.raises(InvalidRequest, match="project must be a Label Studio project id"):
        project_id(ref)


def test_checked_ids_guard_url_parts():
    assert checked_project_id("042") == "42"
    with pytest.raises(InvalidRequest):
        checked_project_id("4.2")
    job = new_job_id()
    assert checked_job_id(job) == job and len(job) == 32
    with pytest.raises(NotFound):
        checked_job_id("../../latest")


def test_job_ids_sort_by_creation_time():
    ids = [new_job_id() for _ in range(50)]
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)
