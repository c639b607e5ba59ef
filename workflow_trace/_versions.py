"""Project versions on the local store: content-addressed snapshots of a project folder.

A local project is a folder. ``create`` hashes its files (streaming, SHA-256), stores each distinct content
once under ``<store folder>/objects/`` and records a manifest; version numbers run 1, 2, 3 per project.
When the folder is unchanged since the latest
version, that version's id is returned and nothing is created (the seed's rule). Files whose size and
modification time match the latest manifest are not re-read (``rehash=True`` forces it).

Objects are copies by default. ``WORKFLOW_TRACE_VERSION_LINKS=hardlink`` stores hard links instead where the
file system allows (no extra disk), but a hard link shares the file with the project: anything that rewrites
a file *in place* — ``open(path, "w")``, ``Path.write_text`` — changes the stored object too, silently
breaking the snapshot. That is why copying is the default; with either mode, ``restore`` verifies every
file's hash, so damage is reported (naming the file), never restored silently.

``restore`` recreates a version as a new folder next to the original, ``"<name>, from ver. N"``, and
registers it as a new local project. Two processes versioning the same folder at once make one version: the
check "unchanged since the latest version" and the insert run in one write transaction.
"""

from __future__ import annotations

import hashlib
import operator
import os
import re
import shutil
import sqlite3
import stat
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._codeversion import file_digest
from ._context import logger
from ._errors import VersioningError
from ._nodes import Project
from ._protocols import VersionInfo
from ._sqlite import connect, write_transaction

__all__ = ["MIGRATION", "LocalVersions"]


#: Statements of the store migration that adds versions (run by the SQLite backend's migrations).
MIGRATION = [
    """CREATE TABLE IF NOT EXISTS version_projects (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS versions (
        id INTEGER PRIMARY KEY,
        project_id INTEGER NOT NULL REFERENCES version_projects(id),
        version INTEGER NOT NULL,
        title TEXT,
        description TEXT,
        created_at TEXT NOT NULL,
        manifest TEXT NOT NULL,
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        UNIQUE (project_id, version)
    )""",
    """CREATE TABLE IF NOT EXISTS version_files (
        version_id INTEGER NOT NULL REFERENCES versions(id),
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        mode INTEGER NOT NULL,
        PRIMARY KEY (version_id, path)
    )""",
]

_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELDS = {"id", "version", "title", "description", "created_at"}
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "in": lambda actual, expected: actual in expected,
}


@dataclass(frozen=True)
class _Entry:
    path: str  # relative, "/"-separated
    sha256: str
    size: int
    mtime_ns: int
    mode: int


def _hash_file(path: Path) -> str:
    return file_digest(path, hashlib.sha256()).hexdigest()


def _manifest(entries: list[_Entry]) -> str:
    digest = hashlib.sha256()
    for e in entries:
        digest.update(f"{e.path}\0{e.sha256}\0{e.size}\0{e.mode:o}\n".encode())
    return digest.hexdigest()


def _safe_relative(path: str) -> bool:
    """Whether a recorded file path stays inside the folder it is restored into."""
    if not path or "\0" in path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return False
    return all(part not in ("", ".", "..") for part in path.replace("\\", "/").split("/"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class LocalVersions:
    """Versions of local project folders, kept in a store file and its ``objects/`` folder.

    Args:
        db_path: The store file (already migrated by the SQLite backend).
        timeout: SQLite busy timeout, seconds.
    """

    def __init__(self, db_path: Path, timeout: float = 30.0) -> None:
        self.db_path = db_path
        self.objects = db_path.parent / "objects"
        self.timeout = timeout

    # -- plumbing ------------------------------------------------------------------------------------
    @contextmanager
    def _conn(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with closing(connect(self.db_path, self.timeout)) as conn, write_transaction(conn) if write else nullcontext():
            yield conn

    def _object(self, sha: str) -> Path:
        return self.objects / sha[:2] / sha[2:]

    # -- projects ------------------------------------------------------------------------------------
    def register(self, path: str | os.PathLike[str], conn: sqlite3.Connection | None = None) -> int:
        """The local project id of a folder (registered on first use)."""
        folder = str(Path(os.path.abspath(os.fspath(path))))
        if conn is None:
            with self._conn(write=True) as c:
                return self.register(folder, c)
        # OR IGNORE: another process may register the same folder at the same moment.
        conn.execute("INSERT OR IGNORE INTO version_projects (path, name, created_at) VALUES (?, ?, ?)",
                     (folder, Path(folder).name, _now()))
        row = conn.execute("SELECT id FROM version_projects WHERE path = ?", (folder,)).fetchone()
        return int(row[0])

    def resolve(self, project: Project, conn: sqlite3.Connection) -> tuple[int, Path]:
        """The local id and folder of ``project`` (by path, else by a registered id).

        Raises:
            VersioningError: an id that names no local project.
        """
        if project.path is not None:
            folder = Path(os.path.abspath(project.path))
            return self.register(folder, conn), folder
        found = self._find(project, conn)
        if found is None:
            if project.id is None:
                raise VersioningError(f"no local project has a version with id {project.version_id}")
            raise VersioningError(f"project {project.id} is not a local project: give its folder, Project(path=...), "
                                  "to version it on the local store")
        return found

    @staticmethod
    def _find(project: Project, conn: sqlite3.Connection) -> tuple[int, Path] | None:
        if project.path is not None:
            folder = str(Path(os.path.abspath(project.path)))
            row = conn.execute("SELECT id, path FROM version_projects WHERE path = ?", (folder,)).fetchone()
        elif project.id is not None:
            row = conn.execute("SELECT id, path FROM version_projects WHERE id = ?", (project.id,)).fetchone()
        else:  # a version given alone: Project(version_id=...)
            row = conn.execute("SELECT p.id, p.path FROM versions v JOIN version_projects p ON p.id = v.project_id"
                               " WHERE v.id = ?", (project.version_id,)).fetchone()
        return None if row is None else (int(row[0]), Path(row[1]))

    def find(self, project: Project) -> tuple[int, Path] | None:
        """The local id and folder of a project the store knows, or ``None`` (nothing is registered)."""
        with self._conn() as conn:
            return self._find(project, conn)

    # -- create ----------------------------------------------------------------------------------------
    def _scan(self, root: Path, previous: dict[str, _Entry], rehash: bool) -> list[_Entry]:
        if not root.is_dir():
            raise VersioningError(f"cannot version {root}: it is not a folder")
        skip = self.db_path.parent.resolve()
        entries: list[_Entry] = []
        skipped = 0
        for dirpath, dirnames, filenames in os.walk(root):
            here = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if (here / d).resolve() != skip)
            for name in sorted(filenames):
                full = here / name
                st = full.lstat()
                if not stat.S_ISREG(st.st_mode):
                    skipped += 1
                    continue
                rel = full.relative_to(root).as_posix()
                old = previous.get(rel)
                if not rehash and old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                    sha = old.sha256
                else:
                    sha = _hash_file(full)
                entries.append(_Entry(rel, sha, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)))
        if skipped:
            logger.warning("versioning %s: %d symlink(s) or special file(s) left out", root, skipped)
        entries.sort(key=lambda e: e.path)
        return entries

    def _store(self, root: Path, entries: list[_Entry]) -> None:
        hardlink = os.environ.get("WORKFLOW_TRACE_VERSION_LINKS", "copy").strip().lower() == "hardlink"
        tmp_dir = self.objects / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        for e in entries:
            target = self._object(e.sha256)
            if target.exists():  # stored before, or earlier in this loop (the same content twice)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / uuid.uuid4().hex
            src = root / e.path
            try:
                if not hardlink:
                    raise OSError("copies requested")
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)
                if _hash_file(tmp) != e.sha256:
                    tmp.unlink()
                    raise VersioningError(f"{src} changed while it was being versioned; try again") from None
            os.replace(tmp, target)

    def changes_since(self, version_id: int, root: Path) -> list[str] | None:
        """The files of ``root`` that differ from version ``version_id`` (added, removed, or with other content;
        sizes and times first, hashes where they differ); ``None`` when the version is not in this store."""
        with self._conn() as conn:
            entries = self._files(conn, version_id)
            if not entries and conn.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,)).fetchone() is None:
                return None
        old = {e.path: e for e in entries}
        if not root.is_dir():
            return sorted(old) or ["(the folder is gone)"]
        now = {e.path: e for e in self._scan(root, old, rehash=False)}
        return sorted(p for p in old.keys() | now.keys()
                      if p not in old or p not in now or old[p].sha256 != now[p].sha256)

    @staticmethod
    def _files(conn: sqlite3.Connection, version_id: int) -> list[_Entry]:
        rows = conn.execute("SELECT path, sha256, size, mtime_ns, mode FROM version_files WHERE version_id = ?"
                            " ORDER BY path", (version_id,))
        return [_Entry(*row) for row in rows]

    @staticmethod
    def _latest(conn: sqlite3.Connection, project_id: int) -> tuple[int, int, str] | None:
        row = conn.execute("SELECT id, version, manifest FROM versions WHERE project_id = ? ORDER BY version DESC"
                           " LIMIT 1", (project_id,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), str(row[2]))

    def create(self, project: Project, title: str | None, description: str | None, *, rehash: bool = False) -> int:
        """Snapshot the project folder; return the new version's id, or the latest one's if unchanged.

        Raises:
            VersioningError: the folder does not exist, or a file changed while it was copied.
        """
        with self._conn() as conn:
            project_id, root = self.resolve(project, conn)
            latest = self._latest(conn, project_id)
            previous = {e.path: e for e in self._files(conn, latest[0])} if latest else {}
        entries = self._scan(root, previous, rehash)
        manifest = _manifest(entries)
        if latest is not None and latest[2] == manifest:
            return latest[0]
        self._store(root, entries)
        with self._conn(write=True) as conn:
            # Decide again under the write lock: another process may have versioned the folder meanwhile.
            latest = self._latest(conn, project_id)
            if latest is not None and latest[2] == manifest:
                return latest[0]
            number = 1 if latest is None else latest[1] + 1
            cur = conn.execute(
                "INSERT INTO versions (project_id, version, title, description, created_at, manifest, files, bytes)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (project_id, number, title, description, _now(), manifest, len(entries), sum(e.size for e in entries)))
            version_id = int(cur.lastrowid or 0)
            conn.executemany("INSERT INTO version_files (version_id, path, sha256, size, mtime_ns, mode)"
                             " VALUES (?, ?, ?, ?, ?, ?)",
                             [(version_id, e.path, e.sha256, e.size, e.mtime_ns, e.mode) for e in entries])
        logger.info("%s: version %d (%d files)", root, number, len(entries))
        return version_id

    # -- restore ---------------------------------------------------------------------------------------
    def restore(
        self, project: Project, version_id: int | None, version_num: int | None, skip_missed_entities: bool = False,
        *, target: Path | None = None,
    ) -> Project:
        """Recreate a version as a new folder (next to the original, or ``target``, which must not exist yet)
        and return it as a new project.

        Raises:
            VersioningError: no such version, or a stored object is missing or damaged (naming the file)
                and ``skip_missed_entities`` is false.
        """
        with self._conn() as conn:
            project_id, root = self.resolve(project, conn)
            column, value = ("id", version_id) if version_id is not None else ("version", version_num)
            row = conn.execute(f"SELECT id, version FROM versions WHERE {column} = ? AND project_id = ?",
                               (value, project_id)).fetchone()
            if row is None:
                which = f"id {version_id}" if version_id is not None else f"number {version_num}"
                raise VersioningError(f"{root} has no version with {which}")
            vid, number = int(row[0]), int(row[1])
            entries = self._files(conn, vid)
        for e in entries:  # every record is checked before anything is written
            if not _safe_relative(e.path) or not _SHA256.fullmatch(e.sha256):
                raise VersioningError(f"version {number} of {root} has a bad file record {e.path!r} (sha256 "
                                      f"{e.sha256[:16]!r}): a restored file must stay inside the restored folder; "
                                      "nothing was restored")
        if target is None:
            target = root.parent / f"{root.name}, from ver. {number}"
            n = 2
            while target.exists():
                target = root.parent / f"{root.name}, from ver. {number} ({n})"
                n += 1
        elif target.exists():
            raise VersioningError(f"cannot restore into {target}: it exists already")
        target.mkdir(parents=True)
        try:
            for e in entries:
                self._restore_file(e, target, skip_missed_entities)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        new_id = self.register(target)
        return Project(id=new_id, path=str(target))

    def _restore_file(self, e: _Entry, target: Path, skip: bool) -> None:
        source = self._object(e.sha256)
        dest = target / e.path  # inside target: every record passed _safe_relative before anything was written
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with open(source, "rb") as src, open(dest, "wb") as out:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() == e.sha256:
                os.chmod(dest, e.mode & 0o777)
                os.utime(dest, ns=(e.mtime_ns, e.mtime_ns))
                return
            dest.unlink()
            problem = f"the stored object of {e.path} is damaged (its hash does not match)"
        else:
            problem = f"the stored object of {e.path} is missing"
        if not skip:
            raise VersioningError(f"{problem}; pass skip_missed_entities=True to restore without it")
        logger.warning("restore: %s: skipped", problem)

    # -- list ------------------------------------------------------------------------------------------
    def list(self, project: Project, filters: list[dict[str, Any]] | None = None) -> list[VersionInfo]:
        """The project's versions, oldest first, filtered as the seed describes.

        Raises:
            ValueError: a filter with an unknown field or operator (named).
        """
        checks = [_check_filter(f) for f in filters or []]
        with self._conn() as conn:
            project_id, root = self.resolve(project, conn)
            rows = conn.execute("SELECT id, version, title, description, created_at FROM versions"
                                " WHERE project_id = ? ORDER BY version", (project_id,)).fetchall()
        infos = [VersionInfo(id=r[0], version=r[1], project_id=project_id, project_path=str(root), title=r[2],
                             description=r[3], created_at=datetime.fromisoformat(r[4])) for r in rows]
        return [info for info in infos if all(check(info) for check in checks)]

    def sizes(self, project: Project) -> dict[int, tuple[int, int]]:
        """Files and bytes of each version of a known project, by version id (empty when unknown)."""
        with self._conn() as conn:
            found = self._find(project, conn)
            if found is None:
                return {}
            rows = conn.execute("SELECT id, files, bytes FROM versions WHERE project_id = ?", (found[0],))
            return {int(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def version_number(self, version_id: int) -> int | None:
        """The number of a version id, or ``None``."""
        with self._conn() as conn:
            row = conn.execute("SELECT version FROM versions WHERE id = ?", (version_id,)).fetchone()
        return None if row is None else int(row[0])


def _check_filter(f: dict[str, Any]) -> Any:
    if not isinstance(f, dict) or set(f) != {"field", "operator", "value"}:
        raise ValueError(f"a version filter is {{'field', 'operator', 'value'}}, not {f!r}")
    field, op, value = f["field"], f["operator"], f["value"]
    if field not in _FIELDS:
        raise ValueError(f"unknown version filter field {field!r}; fields are: {', '.join(sorted(_FIELDS))}")
    if op not in _OPERATORS:
        raise ValueError(f"unknown version filter operator {op!r}; operators are: {', '.join(sorted(_OPERATORS))}")
    if op == "in" and not isinstance(value, (list, tuple, set)):
        raise ValueError("the 'in' operator takes a list of values")

    def norm(v: Any) -> Any:
        if field == "created_at" and isinstance(v, str):
            parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        return v

    expected = [norm(v) for v in value] if op == "in" else norm(value)
    compare = _OPERATORS[op]

    def check(info: VersionInfo) -> bool:
        try:
            return bool(compare(getattr(info, field), expected))
        except TypeError:  # None (a version without a title) or another type: not a match
            return False

    return check
