"""Reports with students, grades.csv's reason, the gradebook across labs, the Canvas and Moodle
exports, the class report page, and who can read what the grader writes.

Reports are made here (valid by the schema) rather than graded: grading runs are in
tests/test_teaching_course.py."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest

from course import cli
from course.grading import reports
from course.grading.classreport import class_page, write_class_report
from course.grading.exports import canvas_csv, moodle_csv
from course.grading.gradebook import collect, gradebook_csv, lab_titles
from course.grading.registry import Exercise
from course.grading.roster import Roster, Student

JANE = Student("5678", "Doe, Jane", "jane@uni.example", "S-5678", "Tue")
BOB = Student("1234", "Bob Smith", "bob@uni.example", "S-1234", "Tue")
CAROL = Student("carol", "Carol King", "", "S-9", "Thu")
ROSTER = Roster([JANE, BOB, CAROL])
LAB_1 = [("1.1", "Standardize", 2), ("1.2", "Encoder", 2), ("1.3", "Loss", 2), ("1.4", "Step", 3)]
LAB_2 = [("2.1", "Sampler", 3), ("2.2", "KL", 2)]


def report(student: Student | None, lab: int, failed: dict[str, str], exercises=None,
           status: str = "ok", message: str = "", elapsed: float = 10.0) -> dict:
    """A valid report: every exercise passed except those in ``failed`` (id -> hint)."""
    exercises = exercises or (LAB_1 if lab == 1 else LAB_2)
    entries = [
        {"id": key, "title": title, "points": 0 if key in failed else points,
         "max_points": points, "passed": key not in failed, "message": failed.get(key, "")}
        for key, title, points in exercises
    ]
    made = {
        "schema": reports.SCHEMA, "submission": f"/grading/{student.id if student else 'x'}.py",
        "lab": lab, "points": sum(e["points"] for e in entries),
        "max_points": sum(e["max_points"] for e in entries), "elapsed_s": elapsed,
        "status": status, "message": message, "sandboxed": True, "warnings": [], "limits": {},
        "notes": [], "exercises": entries,
    }
    if student:
        made["student"] = student.as_dict()
    return reports.validate(made)


def missing(student: Student, lab: int) -> dict:
    entries = [Exercise(key, points, title, None) for key, title, points in
               (LAB_1 if lab == 1 else LAB_2)]
    return reports.validate(reports.missing_report(student.as_dict(), lab, entries))


def save(folder: Path, *made: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for one in made:
        name = reports.student_report_name(one["student"]["id"], one["lab"]) if one.get(
            "student") else reports.report_name(one["submission"])
        reports.write_report(one, folder, name)
    return folder


@pytest.fixture
def two_labs(tmp_path):
    """Lab 1 graded in one folder, lab 2 in another; Carol missed lab 1, Bob lab 2."""
    lab_1 = save(tmp_path / "lab1", report(JANE, 1, {}),
                 report(BOB, 1, {"1.3": "you averaged over the genes too", "1.4": "<b>bold</b>"}),
                 missing(CAROL, 1))
    lab_2 = save(tmp_path / "lab2", report(JANE, 2, {"2.2": "the KL has the wrong sign"}),
                 report(CAROL, 2, {}, status="timeout", message="ran past its limit"))
    return lab_1, lab_2


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# --- reports ---------------------------------------------------------------------------------


def test_reason_lists_every_exercise_that_lost_points():
    made = report(BOB, 1, {"1.3": "you averaged over the genes too",
                           "1.4": "the loss of your step is averaged over the genes"})
    assert reports.reason(made) == ("1.3: you averaged over the genes too; "
                                    "1.4: the loss of your step is averaged over the genes")


def test_reason_groups_stubs_and_exercises_the_message_already_explains():
    stubs = report(None, 1, {key: f"not implemented yet: Exercise {key}: x" for key in
                             ("1.1", "1.2", "1.3", "1.4")},
                   status="not attempted", message="no exercise was attempted")
    assert reports.reason(stubs) == ("no exercise was attempted; "
                                     "not implemented yet: 1.1, 1.2, 1.3, 1.4")
    crashed = report(None, 1, {"1.3": "you averaged", "1.4": "not graded: the kernel died"},
                     status="crashed", message="the kernel died")
    assert reports.reason(crashed) == "the kernel died; 1.3: you averaged; no points: 1.4"


def test_student_report_names_are_readable_and_never_shared():
    assert reports.student_report_name("alice", 1) == "alice_lab01"
    odd = [reports.student_report_name(key, 3) for key in ("a/b", "a b", "a_b", "..")]
    assert odd[2] == "a_b_lab03"
    assert len(set(odd)) == 4 and all(re.fullmatch(r"[\w.-]+_lab03", name) for name in odd)


def test_a_report_with_a_malformed_student_is_invalid():
    made = report(JANE, 1, {})
    made["student"] = {"id": "", "name": "x"}
    with pytest.raises(reports.InvalidReport, match="'student' is not an object"):
        reports.validate(made)


def test_grades_csv_names_the_student_when_graded_with_a_roster(two_labs):
    table = rows(reports.rebuild_csv(two_labs[0]).read_text())
    assert table[0][:4] == ["student_id", "name", "submission", "lab"]
    by_id = {row[0]: row for row in table[1:]}
    assert by_id["carol"][-2:] == ["missing", "no submission of this lab was found for this "
                                   "student; no points: 1.1, 1.2, 1.3, 1.4"]
    assert by_id["1234"][1] == "Bob Smith" and by_id["1234"][-4:-2] == ["4", "9"]


def test_files_are_readable_and_belong_to_the_user_who_ran_sudo(tmp_path, monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("only root can give files away")
    monkeypatch.setenv("SUDO_UID", "4321")
    monkeypatch.setenv("SUDO_GID", "4322")
    old = os.umask(0o022)
    try:
        folder = reports.make_folder(tmp_path / "out" / "nested")
        path = folder / "grades.csv"
        reports.write_atomically(path, "x\n")
    finally:
        os.umask(old)
    for made in (path, folder, folder.parent):
        info = made.stat()
        assert (info.st_uid, info.st_gid) == (4321, 4322), made
    assert path.stat().st_mode & 0o777 == 0o644
    assert tmp_path.stat().st_uid == 0  # a folder that existed before is left alone


# --- gradebook and exports -------------------------------------------------------------------


def test_the_gradebook_has_one_row_per_student_and_one_column_per_lab(two_labs):
    book = collect(list(two_labs), ROSTER)
    table = rows(gradebook_csv(book, lab_titles(book.labs)))
    assert table[0] == ["student_id", "name", "email", "sis_id", "section", "Lab 1 (out of 9)",
                        "Lab 2 (out of 5)", "total", "max", "notes"]
    assert table[1][:1] + table[1][5:] == ["5678", "9", "3", "12", "14", ""]
    assert table[2][:1] + table[2][5:] == ["1234", "4", "missing", "4", "14", "lab 2: missing"]
    assert table[3][:1] + table[3][5:] == ["carol", "missing", "5", "5", "14",
                                           "lab 1: missing; lab 2: timeout (ran past its limit)"]


def test_canvas_import_has_its_header_points_possible_and_blank_missing_cells(two_labs):
    book = collect(list(two_labs), ROSTER)
    table = rows(canvas_csv(book, {1: "Lab 1 (4711)"}))
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                        "Lab 1 (4711)", "Lab 2"]
    assert table[1] == ["Points Possible", "", "", "", "", "9", "5"]
    assert table[2] == ["Doe, Jane", "5678", "S-5678", "", "Tue", "9", "3"]
    assert table[3] == ["Bob Smith", "1234", "S-1234", "", "Tue", "4", ""]
    # a non-numeric student_id is no Canvas user id: Canvas matches Carol by her SIS id
    assert table[4] == ["Carol King", "", "S-9", "", "Thu", "", "5"]


def test_canvas_refuses_a_student_it_could_only_match_by_name(two_labs):
    roster = Roster([JANE, BOB, Student("carol", "Carol King", "c@x")])
    with pytest.raises(ValueError, match="'carol' has neither a numeric Canvas user id"):
        canvas_csv(collect(list(two_labs), roster))


def test_moodle_import_has_a_user_column_and_dashes_for_missing(two_labs):
    book = collect(list(two_labs), ROSTER)
    with pytest.raises(ValueError, match="students carol have no email"):
        moodle_csv(book)
    table = rows(moodle_csv(book, key="username"))
    assert table == [["Username", "Lab 1", "Lab 2"], ["5678", "9", "3"], ["1234", "4", "-"],
                     ["carol", "-", "5"]]
    with_email = Roster([JANE, BOB, Student("carol", "Carol King", "carol@uni.example")])
    table = rows(moodle_csv(collect(list(two_labs), with_email)))
    assert table[0] == ["Email address", "Lab 1", "Lab 2"]
    assert table[3] == ["carol@uni.example", "-", "5"]


def test_the_gradebook_refuses_reports_it_cannot_place(two_labs, tmp_path):
    lab_1, lab_2 = two_labs
    stray = save(tmp_path / "stray", report(None, 1, {}), report(JANE, 1, {}),
                 report(Student("zed", "Zed", "z@x"), 2, {}), report(BOB, 2, {}, LAB_2[:1]))
    (stray / "broken.json").write_text(json.dumps({"schema": reports.SCHEMA}))
    with pytest.raises(ValueError) as error:
        collect([lab_1, lab_2, stray, tmp_path / "nowhere"], ROSTER)
    message = str(error.value)
    assert message.startswith("no gradebook written: ")
    assert "was graded without --roster" in message
    assert "5678 has two reports for lab 1: " in message
    assert "belongs to 'zed', who is not in the roster" in message
    assert "lab 2's reports disagree on its maximum: 5 (" in message
    assert "broken.json: 'submission' is missing" in message
    assert "nowhere is not a folder of reports" in message


def test_lab_titles_must_be_distinct_and_name_graded_labs():
    assert lab_titles((1, 2), {2: "VAE"}) == {1: "Lab 1", 2: "VAE"}
    with pytest.raises(ValueError, match="the same title"):
        lab_titles((1, 2), {2: "Lab 1"})
    with pytest.raises(ValueError, match=r"lab\(s\) \[3\], which no report grades"):
        lab_titles((1, 2), {3: "x"})


def test_course_gradebook_writes_every_export_or_none(two_labs, tmp_path, capsys):
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email,sis_id,section\n5678,\"Doe, Jane\",jane@uni.example,"
                      "S-5678,Tue\n1234,Bob Smith,bob@uni.example,S-1234,Tue\ncarol,Carol King,,"
                      "S-9,Thu\n")
    out = tmp_path / "book.csv"
    arguments = ["gradebook", *map(str, two_labs), "--roster", str(roster), "--out", str(out),
                 "--canvas", str(tmp_path / "canvas.csv")]
    assert cli.main([*arguments, "--moodle", str(tmp_path / "moodle.csv")]) == 2
    assert "have no email in the roster" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "canvas.csv").exists()
    assert cli.main([*arguments, "--title", "2=Lab 2: VAE"]) == 0
    assert rows(out.read_text())[0][6] == "Lab 2: VAE (out of 5)"
    assert "3 students x 2 labs; 2 missing" in capsys.readouterr().out
    assert cli.main([*arguments, "--title", "two=x"]) == 2
    assert "write it as N=TITLE" in capsys.readouterr().err


# --- the class report ------------------------------------------------------------------------


def test_the_class_report_is_one_self_contained_escaped_page(two_labs, tmp_path):
    lab_1 = two_labs[0]
    extra = [report(Student(f"s{i}", f"S {i}", f"s{i}@x"), 1,
                    {"1.3": f"the loss is {i}.5; the squared error is {i + 1}.25"},
                    elapsed=100 + i) for i in range(3)]
    save(lab_1, *extra)
    page = write_class_report(lab_1, tmp_path / "class.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "5 submissions, 1 student without a submission, mean score" in page
    # hints that differ only in their numbers count as one, shown by their most frequent wording
    assert re.search(r"<td>3</td><td>1\.3</td><td>the loss is \d\.5", page)
    slowest = re.findall(r"<tr><td>([\d.]+)</td><td>([^<]+)</td>", page.split("Slowest")[1])
    assert slowest[0] == ("102.0", "S 2 (s2)")


def test_the_class_report_of_an_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="holds no reports"):
        write_class_report(tmp_path, tmp_path / "class.html")
    assert class_page([report(None, 1, {})], tmp_path).count("<section>") == 1
