"""Versions on the local store: snapshots of real folders, unchanged detection, restore, filters."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
from pathlib import Path

import pytest

from workflow_trace import Project, VersioningError
from workflow_trace._versions import MIGRATION, LocalVersions


def _store(tmp_path: Path) -> LocalVersions:
    db = tmp_path / "store" / "workflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in MIGRATION:
        conn.execute(statement)
    conn.commit()
    conn.close()
    return LocalVersions(db)


def _project(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "coco"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.jpg").write_bytes(b"\xff\xd8 image a")
    (root / "images" / "b.jpg").write_bytes(b"\xff\xd8 image b")
    (root / "ann.json").write_text('{"a": 1}')
    return root


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_create_then_unchanged_returns_the_same_version(tmp_path: Path) -> None:
    """A second create of an unchanged folder returns the first version's id and adds nothing."""
    store, root = _store(tmp_path), _project(tmp_path)
    first = store.create(Project(path=str(root)), "v1", "first")
    assert first == store.create(Project(path=str(root)), "again", None)
    assert [1] == [v.version for v in store.list(Project(path=str(root)))]


@pytest.mark.parametrize("change", ["byte", "add", "delete", "rename"])
def test_every_kind_of_change_makes_a_new_version(tmp_path: Path, change: str) -> None:
    """Changing a byte, adding, deleting or renaming a file gives version 2."""
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    first = store.create(project, None, None)
    target = root / "ann.json"
    if change == "byte":
        stat = target.stat()
        target.write_text('{"a": 2}')
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: found by rehash only
        assert first == store.create(project, None, None)
        second = store.create(project, None, None, rehash=True)
    else:
        if change == "add":
            (root / "new.txt").write_text("x")
        elif change == "delete":
            target.unlink()
        else:
            target.rename(root / "annotations.json")
        second = store.create(project, None, None)
    assert second != first
    assert [1, 2] == [v.version for v in store.list(project)]


def test_restore_by_id_and_by_number_is_byte_identical(tmp_path: Path) -> None:
    """Restoring a version recreates the files exactly, next to the original, as a new project."""
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    expected = _tree(root)
    v1 = store.create(project, "v1", None)
    (root / "ann.json").write_text("changed")
    (root / "images" / "a.jpg").unlink()
    store.create(project, "v2", None)

    by_id = store.restore(project, v1, None)
    by_num = store.restore(project, None, 1)
    assert Path(by_id.path or "").name == "coco, from ver. 1"
    assert Path(by_num.path or "").name == "coco, from ver. 1 (2)"
    assert expected == _tree(Path(by_id.path or ""))
    assert expected == _tree(Path(by_num.path or ""))
    assert by_id.id is not None
    assert by_id.id != by_num.id


def test_missing_object_is_an_error_naming_the_file_or_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A deleted stored object fails the restore naming the file, or is skipped with a WARNING."""
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    v1 = store.create(project, None, None)
    for obj in (store.objects).rglob("*"):
        if obj.is_file() and obj.read_bytes() == b'{"a": 1}':
            obj.unlink()
    with pytest.raises(VersioningError, match=r"ann\.json"):
        store.restore(project, v1, None)
    assert not (root.parent / "coco, from ver. 1").exists()  # no half-restored folder is left
    restored = store.restore(project, v1, None, skip_missed_entities=True)
    assert ["images/a.jpg", "images/b.jpg"] == sorted(_tree(Path(restored.path or "")))
    assert "ann.json" in caplog.text


def test_damaged_object_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With hard links, a file rewritten in place damages the object: restore reports it, naming the file."""
    monkeypatch.setenv("WORKFLOW_TRACE_VERSION_LINKS", "hardlink")
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    v1 = store.create(project, None, None)
    with open(root / "ann.json", "r+") as fh:  # in-place edit: changes the hard-linked object too
        fh.write('{"b"')
    with pytest.raises(VersioningError, match=r"ann.json.*damaged"):
        store.restore(project, v1, None)


def test_copies_by_default_so_in_place_edits_do_not_damage_versions(tmp_path: Path) -> None:
    """The default stores copies: rewriting a project file in place leaves the version intact."""
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    expected = _tree(root)
    v1 = store.create(project, None, None)
    (root / "ann.json").write_text('{"b": 2}')
    assert expected == _tree(Path(store.restore(project, v1, None).path or ""))


def test_filters(tmp_path: Path) -> None:
    """The seed's filter shape over id, version, title and created_at, with every operator."""
    store, root = _store(tmp_path), _project(tmp_path)
    project = Project(path=str(root))
    for i in range(1, 5):
        (root / "ann.json").write_text(str(i))
        store.create(project, f"t{i}", None)

    def versions(filters: list[dict[str, object]]) -> list[int]:
        return [v.version for v in store.list(project, filters)]

    assert [3] == versions([{"field": "version", "operator": "=", "value": 3}])
    assert [1, 2, 4] == versions([{"field": "version", "operator": "!=", "value": 3}])
    assert [1, 2] == versions([{"field": "version", "operator": "<", "value": 3}])
    assert [1, 2, 3] == versions([{"field": "version", "operator": "<=", "value": 3}])
    assert [4] == versions([{"field": "version", "operator": ">", "value": 3}])
    assert [3, 4] == versions([{"field": "version", "operator": ">=", "value": 3}])
    assert [2, 4] == versions([{"field": "title", "operator": "in", "value": ["t2", "t4"]}])
    created = store.list(project)[2].created_at
    assert [3, 4] == versions([{"field": "created_at", "operator": ">=", "value": created.isoformat()}])  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="colour"):
        store.list(project, [{"field": "colour", "operator": "=", "value": 1}])
    with pytest.raises(ValueError, match="~"):
        store.list(project, [{"field": "version", "operator": "~", "value": 1}])


def test_project_by_registered_id(tmp_path: Path) -> None:
    """A folder gets a local id when first versioned; Project(id=...) then resolves to it."""
    store, root = _store(tmp_path), _project(tmp_path)
    store.create(Project(path=str(root)), None, None)
    local_id = store.register(root)
    assert [1] == [v.version for v in store.list(Project(id=local_id))]
    with pytest.raises(VersioningError, match="not a local project"):
        store.list(Project(id=local_id + 100))


def test_missing_folder(tmp_path: Path) -> None:
    """Versioning a folder that does not exist names it."""
    store = _store(tmp_path)
    with pytest.raises(VersioningError, match="nope"):
        store.create(Project(path=str(tmp_path / "nope")), None, None)


def _version_in_child(db: str, root: str, queue: multiprocessing.Queue[int]) -> None:
    queue.put(LocalVersions(Path(db)).create(Project(path=root), "race", None))


def test_two_processes_versioning_one_folder_make_one_version(tmp_path: Path) -> None:
    """Two processes versioning the same folder at once make one version, not two or a broken one."""
    store, root = _store(tmp_path), _project(tmp_path)
    for i in range(200):
        (root / f"f{i}.txt").write_text(str(i) * 50)
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_version_in_child, args=(str(store.db_path), str(root), queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    ids = {queue.get(timeout=5), queue.get(timeout=5)}
    assert 1 == len(ids)
    assert [1] == [v.version for v in store.list(Project(path=str(root)))]
    restored = store.restore(Project(path=str(root)), None, 1)
    assert _tree(root) == _tree(Path(restored.path or ""))


def test_find_does_not_register(tmp_path: Path) -> None:
    """find names a known project by path or id and returns None for an unknown one, registering nothing."""
    store, root = _store(tmp_path), _project(tmp_path)
    store.create(Project(path=str(root)), None, None)
    local_id = store.register(root)
    other = tmp_path / "other"
    other.mkdir()
    expected = ((local_id, root), (local_id, root), None, None)
    assert expected == (store.find(Project(path=str(root))), store.find(Project(id=local_id)),
                        store.find(Project(path=str(other))), store.find(Project(id=local_id + 1)))
    assert None is store.find(Project(path=str(other)))  # still unknown: the lookup did not register it


def test_sizes(tmp_path: Path) -> None:
    """Files and bytes of each version, by version id."""
    store, root = _store(tmp_path), _project(tmp_path)
    v1 = store.create(Project(path=str(root)), None, None)
    (root / "more.bin").write_bytes(b"x" * 100)
    v2 = store.create(Project(path=str(root)), None, None)
    expected = {v1: (3, 28), v2: (4, 128)}
    assert expected == store.sizes(Project(path=str(root)))


def test_a_version_alone_names_its_project(tmp_path: Path) -> None:
    """Project(version_id=...) alone resolves to the project of that version (restore, list)."""
    store, root = _store(tmp_path), _project(tmp_path)
    v1 = store.create(Project(path=str(root)), None, None)
    restored = store.restore(Project(version_id=v1), v1, None)
    expected = ([1], _tree(root))
    assert expected == ([v.version for v in store.list(Project(version_id=v1))], _tree(Path(restored.path or "")))
    with pytest.raises(VersioningError, match="no local project has a version with id 99"):
        store.list(Project(version_id=99))
