"""``workflow-trace versions list|restore``, run as a real process on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from _support import cli_text as cli

import workflow_trace as wt
from workflow_trace.backends.sqlite import SQLiteBackend

REPO = Path(__file__).resolve().parents[1]



def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


class Versioned:
    """A store in which a project folder has two versions, and what version 1 held."""

    def __init__(self, tmp_path: Path) -> None:
        self.cwd = tmp_path
        self.db = tmp_path / "store" / "workflow.db"
        self.project = tmp_path / "data" / "coco"
        (self.project / "img").mkdir(parents=True)
        (self.project / "img" / "a.jpg").write_bytes(b"\xff\xd8" + b"a" * 3000)
        (self.project / "ann.json").write_text('{"a.jpg": "cat"}')
        self.v1 = tree(self.project)
        wt.configure(SQLiteBackend(self.db), strict=True)

        @wt.consumes_project(version="Train YOLO")
        def train(project: str) -> None:
            """Read the project."""

        train(str(self.project))
        (self.project / "ann.json").write_text('{"a.jpg": "dog"}')
        (self.project / "img" / "b.jpg").write_bytes(b"\xff\xd8b")
        train(str(self.project))
        wt.reset()
        self.local_id = SQLiteBackend(self.db).list_versions(wt.Project(path=str(self.project)))[0].project_id


@pytest.fixture
def versioned(tmp_path: Path) -> Versioned:
    """A store with two versions of data/coco."""
    return Versioned(tmp_path)


class TestList:
    def test_by_folder(self, versioned: Versioned) -> None:
        """versions list FOLDER prints a table: id, version, title, created, files, size."""
        result = cli("versions", "list", str(versioned.project), "--db", str(versioned.db), cwd=versioned.cwd)
        lines = result.stdout.splitlines()
        expected = (
            0, "", f"versions of {versioned.project} (project:{versioned.local_id})",
            ["ID", "VERSION", "TITLE", "CREATED", "FILES", "SIZE"],
            [("1", "v1", "Train", "YOLO", "2", "2.9 KiB"), ("2", "v2", "Train", "YOLO", "3", "3.0 KiB")],
        )
        actual = (
            result.returncode, result.stderr, lines[0], lines[1].split(),
            [(r[0], r[1], r[2], r[3], r[6], f"{r[7]} {r[8]}") for r in (line.split() for line in lines[2:])],
        )
        assert expected == actual

    def test_without_an_action_lists(self, versioned: Versioned) -> None:
        """``versions PROJECT`` (DESIGN.md 8 names the command ``versions``) is ``versions list PROJECT``."""
        listed = cli("versions", "list", str(versioned.project), "--db", str(versioned.db), cwd=versioned.cwd)
        bare = cli("versions", str(versioned.project), "--db", str(versioned.db), cwd=versioned.cwd)
        assert (0, listed.stdout, "") == (bare.returncode, bare.stdout, bare.stderr)

    def test_by_local_id_and_relative_path(self, versioned: Versioned) -> None:
        """project:ID and a folder relative to the working directory name the same project."""
        by_id = cli("versions", "list", f"project:{versioned.local_id}", "--db", str(versioned.db),
                    cwd=versioned.cwd)
        by_path = cli("versions", "list", "data/coco", "--db", str(versioned.db), cwd=versioned.cwd)
        expected = (0, 0, by_id.stdout)
        assert expected == (by_id.returncode, by_path.returncode, by_path.stdout)

    def test_store_from_the_environment_default(self, versioned: Versioned) -> None:
        """Without --db the default store of the working directory is read (here: none, a clear error)."""
        result = cli("versions", "list", "data/coco", cwd=versioned.cwd)
        expected = (2, True)
        assert expected == (result.returncode, result.stderr.startswith("workflow-trace: error: no lineage store"))

    @pytest.mark.parametrize("name", ["data/other", "project:99"])
    def test_unknown_project(self, versioned: Versioned, name: str) -> None:
        """A folder or id the store never recorded: one line naming the closest known project, exit code 2."""
        result = cli("versions", "list", name, "--db", str(versioned.db), cwd=versioned.cwd)
        shown = name if name.startswith("project:") else f"project:{name}"
        expected = (2, 1, True, "")
        assert expected == (result.returncode, len(result.stderr.splitlines()),
                            f"error: no node {shown} in the store; closest: project:" in result.stderr, result.stdout)


    @pytest.mark.parametrize("name", ["file:/m/best.pt", "task:1"])
    def test_a_node_that_is_not_a_project(self, versioned: Versioned, name: str) -> None:
        """Another kind of node is named as such (not as `project:file:...`): one line, exit code 2."""
        result = cli("versions", "list", name, "--db", str(versioned.db), cwd=versioned.cwd)
        kind = name.split(":")[0]
        expected = (2, [f"workflow-trace: error: versions are kept for projects, not a {kind}: name the project "
                        "(its folder, project:PATH or project:ID)"])
        assert expected == (result.returncode, result.stderr.splitlines())

class TestRestore:
    def test_restore_by_number(self, versioned: Versioned) -> None:
        """versions restore --version 1 recreates version 1 next to the project and prints the folder."""
        result = cli("versions", "restore", "data/coco", "--version", "1", "--db", str(versioned.db),
                     cwd=versioned.cwd)
        restored = Path(result.stdout.strip())
        expected = (0, versioned.project.parent / "coco, from ver. 1", versioned.v1)
        assert expected == (result.returncode, restored, tree(restored))

    def test_restore_by_id(self, versioned: Versioned) -> None:
        """--id takes a version id; a second restore of the same version gets its own folder."""
        first = cli("versions", "restore", "data/coco", "--id", "2", "--db", str(versioned.db), cwd=versioned.cwd)
        second = cli("versions", "restore", "data/coco", "--id", "2", "--db", str(versioned.db), cwd=versioned.cwd)
        expected = ("coco, from ver. 2", "coco, from ver. 2 (2)", tree(versioned.project))
        assert expected == (Path(first.stdout.strip()).name, Path(second.stdout.strip()).name,
                            tree(Path(second.stdout.strip())))

    def test_no_such_version(self, versioned: Versioned) -> None:
        """A version number the project does not have: one line, exit code 2, nothing created."""
        result = cli("versions", "restore", "data/coco", "--version", "5", "--db", str(versioned.db),
                     cwd=versioned.cwd)
        expected = (2, f"workflow-trace: error: {versioned.project} has no version with number 5\n", ["coco"])
        folders = sorted(p.name for p in versioned.project.parent.iterdir())
        assert expected == (result.returncode, result.stderr, folders)

    def test_missing_object(self, versioned: Versioned) -> None:
        """A stored file that went missing is an error naming it; --skip-missed restores the rest."""
        for obj in (versioned.db.parent / "objects").rglob("*"):
            if obj.is_file() and obj.read_bytes() == b'{"a.jpg": "cat"}':
                obj.unlink()
        failed = cli("versions", "restore", "data/coco", "--version", "1", "--db", str(versioned.db),
                     cwd=versioned.cwd)
        skipped = cli("versions", "restore", "data/coco", "--version", "1", "--skip-missed", "--db",
                      str(versioned.db), cwd=versioned.cwd)
        expected = (2, 1, True, 0, ["img/a.jpg"])
        assert expected == (
            failed.returncode, len(failed.stderr.splitlines()), "ann.json" in failed.stderr,
            skipped.returncode, sorted(tree(Path(skipped.stdout.strip()))),
        )

    def test_restore_needs_a_version(self, versioned: Versioned) -> None:
        """Neither --version nor --id: argparse's usage error (exit code 2)."""
        result = cli("versions", "restore", "data/coco", "--db", str(versioned.db), cwd=versioned.cwd)
        assert 2 == result.returncode

    def test_restored_project_can_be_listed(self, versioned: Versioned) -> None:
        """The restored folder is a local project of its own (no versions yet)."""
        restored = cli("versions", "restore", "data/coco", "--version", "1", "--db", str(versioned.db),
                       cwd=versioned.cwd).stdout.strip()
        result = cli("versions", "list", restored, "--db", str(versioned.db), cwd=versioned.cwd)
        expected = (0, f"no versions of {restored} yet\n")
        assert expected == (result.returncode, result.stdout)


def test_help_lists_versions_and_push(tmp_path: Path) -> None:
    """--help names the versions and push subcommands."""
    result = cli("--help", cwd=tmp_path)
    expected = (0, True, True)
    assert expected == (result.returncode, "versions" in result.stdout, "push" in result.stdout)
