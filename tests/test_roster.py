"""The roster: reading roster.csv, and which student each submission belongs to.

A grade must never land under the wrong name: every ambiguous case is refused, naming the rows
or files, before anything is graded."""

from __future__ import annotations

from pathlib import Path

import pytest

from course.grading.roster import Roster, Student, assign, read_roster

STUDENTS = [
    Student("5678", "Doe, Jane", "jane@uni.example"),
    Student("1234", "Bob Smith", "bob@uni.example"),
    Student("123", "Short Id", "short@uni.example"),
    Student("alice", "Alice Lee", "alice@uni.example"),
    Student("malice", "Mal Ice", "mal@uni.example"),
    Student("jane.doe", "Jane Dot", "dot@uni.example"),
    Student("müller", "Max Müller", "max@uni.example"),
]
ROSTER = Roster(STUDENTS)


def owner(name: str, folders: tuple[str, ...] = ()) -> str:
    return ROSTER.owner(Path(name), folders).id


@pytest.mark.parametrize(
    "name, student",
    [
        ("doejane_5678_91011_01_keras_basics.ipynb", "5678"),
        ("smithbob_LATE_1234_91012_lab_01.py", "1234"),
        # the end of a Canvas name is the student's own file name: another id there is ignored
        ("doejane_5678_91011_alice_01.ipynb", "5678"),
        # an attachment id that contains another student's id does not count either
        ("smithbob_1234_5678123_01.py", "1234"),
        ("alice_01.py", "alice"),
        ("ALICE_01.PY", "alice"),
        ("01-alice.ipynb", "alice"),
        ("malice_01.py", "malice"),
        ("x_1234_01.py", "1234"),
        ("jane.doe_01.py", "jane.doe"),
        ("müller_01.ipynb", "müller"),
    ],
)
def test_a_submission_belongs_to_the_one_student_its_name_gives(name, student):
    assert owner(name) == student


@pytest.mark.parametrize(
    "name",
    [
        "alice2_01.py",  # a longer token that starts with an id
        "xalice_01.py",
        "x_12345_01.py",  # 1234 and 123 are parts of a longer number
        "jane.doe2_01.py",
        "xmüller_01.py",
        "lab_01.py",
    ],
)
def test_an_id_inside_a_longer_word_or_number_is_not_a_match(name):
    with pytest.raises(ValueError, match=rf"{name} matches no student of the roster"):
        owner(name)


def test_a_name_with_two_ids_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"matches 2 students: alice \(in its file name\), "
                                         r"malice \(in its file name\); rename it"):
        owner("alice-malice_01.py")


def test_nbgrader_folders_name_the_student_and_must_agree_with_the_file_name():
    assert owner("01_keras_basics.ipynb", ("alice", "lab1")) == "alice"
    assert owner("alice_01.ipynb", ("alice",)) == "alice"
    with pytest.raises(ValueError, match=r"alice \(in a folder\), malice \(in its file name\)"):
        owner("malice_01.ipynb", ("alice",))


def test_a_folder_must_be_the_id_not_contain_it():
    with pytest.raises(ValueError, match="matches no student"):
        owner("01_keras_basics.ipynb", ("alice-backup",))


def test_canvas_users_missing_from_the_roster_and_anonymous_downloads_are_refused():
    with pytest.raises(ValueError, match=r"Canvas' download of Canvas user 9999, who is not in "
                                         r"the roster.*ID column of Canvas' gradebook export"):
        owner("doejane_9999_91011_alice_01.ipynb")
    with pytest.raises(ValueError, match="anonymous Canvas download"):
        owner("anon_x7Yz_91011_lab_01.ipynb")


def test_assign_lists_every_problem_before_anything_is_graded(tmp_path):
    folder = tmp_path / "download"
    names = ["alice_01.py", "01_alice.ipynb", "nobody_01.py", "alice_02.py", "jane.doe.py"]
    paths = [folder / name for name in names]
    labs = {path: (2 if "02" in path.name else 1 if "01" in path.name else None)
            for path in paths}
    with pytest.raises(ValueError) as error:
        assign(ROSTER, paths, [folder], labs)
    message = str(error.value)
    assert message.startswith("nothing was graded: ")
    assert "nobody_01.py matches no student" in message
    assert "cannot tell the lab of " in message and "jane.doe.py" in message
    assert "student alice has 2 submissions of lab 1: " in message
    assert "alice_02.py" not in message  # another lab of the same student is fine

    good = [folder / "alice_01.py", folder / "alice_02.py", folder / "5678" / "x_01.ipynb"]
    owners = assign(ROSTER, good, [folder], {good[0]: 1, good[1]: 2, good[2]: 1})
    assert [owners[path].id for path in good] == ["alice", "alice", "5678"]


def test_only_folders_below_the_folder_being_graded_count(tmp_path):
    """The instructor's own folders (``/home/alice/...``) never name a student."""
    download = tmp_path / "alice" / "download"
    path = download / "01_keras_basics.ipynb"
    with pytest.raises(ValueError, match="matches no student"):
        assign(ROSTER, [path], [download], {path: 1})
    with pytest.raises(ValueError, match="matches no student"):
        assign(ROSTER, [path], [path], {path: 1})


def write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding=encoding)
    return path


def test_a_roster_from_excel_reads_with_bom_semicolons_and_spaced_headers(tmp_path):
    text = "Student ID;Name;E-mail;SIS ID;Section;Notes\n 42 ;Ann;ann@x.org;S42;A;x\n\n7;Bo;;;\n"
    roster = read_roster(write(tmp_path, text, "utf-8-sig"))
    assert [s.id for s in roster.students] == ["42", "7"]
    assert roster.get("42") == Student("42", "Ann", "ann@x.org", "S42", "A")
    assert roster.get("7").email == ""


@pytest.mark.parametrize(
    "text, problem",
    [
        ("student_id,name\n1,Ann\n", r"lacks the column\(s\) email \(its header is student_id, "
                                     r"name\); a roster needs student_id, name, email"),
        ("id,name,email\n1,Ann,a@x\n", r"lacks the column\(s\) student_id"),
        ("student_id,name,email\nAnn1,Ann,a@x\nann1,Bo,b@x\n,Cy,c@x\n",
         r"student_id 'ann1' is on rows 2 and 3; row 4 has no student_id; fix the roster"),
        ("student_id,name,email\n1,Ann,a@x\n2,Bo,A@X\n", r"email 'A@X' is on rows 2 and 3"),
        ("student_id,name,email,name\n1,Ann,a@x,b\n", r"has the column\(s\) name twice"),
        ("student_id,name,email\n", r"lists no students"),
        ("", r"is empty"),
    ],
)
def test_a_bad_roster_is_refused_naming_columns_and_rows(tmp_path, text, problem):
    with pytest.raises(ValueError, match=problem):
        read_roster(write(tmp_path, text))


def test_a_missing_roster_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_roster(tmp_path / "nope.csv")
