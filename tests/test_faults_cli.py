"""Issue #11, faults at the edges a user touches: restore, crafted store files, exports, the spool command, README.

The command line runs as a real process (``python -m workflow_trace``); files are compared byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from _support import REPO, cli, refused_url, snapshot
from httpserver import RecordingServer

import workflow_trace as wt
from workflow_trace.backends import OpenLineageBackend

# -- 5. restore never writes outside its target --------------------------------------------------------


@pytest.fixture
def versioned(tmp_path: Path) -> tuple[Path, Path]:
    """A workspace with a store and a project folder ``proj`` (a.txt, sub/b.txt) versioned once."""
    ws = tmp_path / "ws"
    proj = ws / "proj"
    (proj / "sub").mkdir(parents=True)
    (proj / "a.txt").write_text("alpha\n")
    (proj / "sub" / "b.txt").write_text("beta\n")
    db = ws / ".workflow_trace" / "workflow.db"
    wt.configure(f"sqlite:///{db}")
    wt.version.create(str(proj), "v1")
    assert [1] == [v.version for v in wt.version.get_list(str(proj))]
    wt.reset()
    return ws, db


def _craft(db: Path, record: str) -> None:
    """Rename the version's record of ``a.txt`` to ``record`` (what a damaged or malicious store holds)."""
    with sqlite3.connect(db) as conn:
        changed = conn.execute("UPDATE version_files SET path = ? WHERE path = 'a.txt'", (record,)).rowcount
    assert 1 == changed


def _outside(ws: Path) -> dict[str, tuple[bytes, int]]:
    """Every file of the workspace that is neither in the store folder nor in a restored copy."""
    return {k: v for k, v in snapshot(ws).items() if not k.startswith((".workflow_trace", "proj, from ver."))}


BAD_RECORDS = {"parent": "../x.txt", "absolute": "ABS"}


@pytest.mark.parametrize("bad", list(BAD_RECORDS))
def test_restore_refuses_a_record_outside_the_target(bad: str, versioned: tuple[Path, Path], tmp_path: Path) -> None:
    """A record '../x.txt' or an absolute path: restore raises VersioningError naming it, writes nothing outside."""
    ws, db = versioned
    victim = ws / "x.txt" if bad == "parent" else tmp_path / "abs-victim.txt"
    victim.write_bytes(b"original\n")
    record = "../x.txt" if bad == "parent" else str(victim)
    _craft(db, record)
    before, victim_before = _outside(ws), victim.read_bytes()
    wt.configure(f"sqlite:///{db}")
    with pytest.raises(wt.VersioningError) as caught:
        wt.version.restore(str(ws / "proj"), version_num=1)
    print("error:", caught.value)
    assert (before, b"original\n", True) == (_outside(ws), victim_before, record in str(caught.value))


@pytest.mark.parametrize("bad", list(BAD_RECORDS))
def test_cli_restore_refuses_a_record_outside_the_target(
    bad: str, versioned: tuple[Path, Path], tmp_path: Path
) -> None:
    """`workflow-trace versions restore` on such a record: exit 2, one line naming it, nothing written outside."""
    ws, db = versioned
    victim = ws / "x.txt" if bad == "parent" else tmp_path / "abs-victim.txt"
    victim.write_bytes(b"original\n")
    record = "../x.txt" if bad == "parent" else str(victim)
    _craft(db, record)
    before = _outside(ws)
    done = cli("versions", "restore", "proj", "--version", "1", "--db", str(db), cwd=ws)
    err = done.stderr.decode().splitlines()
    print(f"exit {done.returncode}; stderr: {err}; stdout: {done.stdout.decode()!r}")
    assert (2, 1, True) == (done.returncode, len(err), bool(err) and record in err[0])
    assert (before, b"original\n") == (_outside(ws), victim.read_bytes())


def test_restore_rehashes_objects_and_refuses_a_tampered_one(versioned: tuple[Path, Path]) -> None:
    """A stored object whose bytes were changed: restore raises VersioningError naming the file."""
    ws, db = versioned
    objects = [p for p in (db.parent / "objects").rglob("*") if p.is_file() and p.read_bytes() == b"alpha\n"]
    assert 1 == len(objects)
    objects[0].write_bytes(b"tampered\n")
    wt.configure(f"sqlite:///{db}")
    with pytest.raises(wt.VersioningError) as caught:
        wt.version.restore(str(ws / "proj"), version_num=1)
    assert True is ("a.txt" in str(caught.value)), str(caught.value)


# -- 10. crafted or foreign files given as the store ---------------------------------------------------


def _crafted(kind: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir()
    path = folder / "file.db"
    if kind == "user-version-minus-1":
        from workflow_trace.backends import SQLiteBackend

        with SQLiteBackend(path) as store:
            store.new_task_id("a task")
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = -1")
        conn.close()
    elif kind == "foreign-sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers (name) VALUES ('Ada')")
        conn.commit()
        conn.close()
    elif kind == "spool-file":
        monkeypatch.setenv("WORKFLOW_TRACE_EXIT_TIMEOUT", "0.2")
        backend = OpenLineageBackend(refused_url(), spool_path=path, backoff_base=0.01)
        wt.configure(backend)
        with wt.workflow_step("spooled"):
            pass
        backend.close()
        wt.reset()
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_text("just some text, not a database\n")
    assert path.is_file()
    return path


CRAFTED = ["user-version-minus-1", "foreign-sqlite", "spool-file", "empty", "text"]


@pytest.mark.parametrize(
    "command", [["show"], ["tasks"], ["export", "--format", "json"]], ids=["show", "tasks", "export"]
)
@pytest.mark.parametrize("kind", CRAFTED)
def test_a_file_that_is_not_a_store_is_refused_and_left_untouched(
    kind: str, command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """show/tasks/export on a crafted or foreign file: exit 2, one stderr line, the folder unchanged byte for byte."""
    path = _crafted(kind, tmp_path / "files", monkeypatch)
    before = snapshot(path.parent)
    done = cli(*command, "--db", str(path))
    after = snapshot(path.parent)
    err = done.stderr.decode().splitlines()
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    print(f"exit {done.returncode}; stderr: {err}; files changed or created: {changed}")
    assert (2, 1, []) == (done.returncode, len(err), changed)


# -- 11. exports and terminals: NUL bytes and escape sequences -----------------------------------------

EVIL_TASK = "train\x1b[31mRED\x00nul"
EVIL_FILE = "/data/\x1b]0;pwned\x07title\x00.bin"
EVIL_FOLDER = "/out/\x1b[2J\x1b[Hclear"


@pytest.fixture
def evil_store(tmp_path: Path) -> Path:
    """A store whose task name and node paths hold NUL bytes, an SGR colour, an OSC title and a screen clear."""
    db = tmp_path / "evil.db"
    wt.configure(f"sqlite:///{db}")
    with wt.workflow_step(EVIL_TASK, inputs=[wt.File(path=EVIL_FILE)], outputs=[wt.Folder(path=EVIL_FOLDER)]):
        pass
    wt.reset()
    return db


def _controls(data: bytes, allowed: bytes = b"\n") -> list[str]:
    return sorted({f"0x{b:02x}" for b in data if (b < 0x20 or b == 0x7F) and b not in allowed})


@pytest.mark.parametrize(
    "command", [["show"], ["tasks"], ["export", "--format", "text"]], ids=["show", "tasks", "export-text"]
)
def test_terminal_output_escapes_control_characters(command: list[str], evil_store: Path) -> None:
    """show, tasks and export --format text never write a raw ESC, BEL or NUL byte to the terminal."""
    done = cli(*command, "--db", str(evil_store))
    print(f"exit {done.returncode}; stdout: {done.stdout!r}")
    assert (0, [], True) == (done.returncode, _controls(done.stdout), b"RED" in done.stdout)


def test_mermaid_export_has_no_raw_control_characters(evil_store: Path) -> None:
    """export --format mermaid: no NUL or other raw control character (newlines apart)."""
    done = cli("export", "--format", "mermaid", "--db", str(evil_store))
    print(f"exit {done.returncode}; control characters: {_controls(done.stdout)}")
    assert (0, []) == (done.returncode, _controls(done.stdout))


def test_dot_export_stays_parseable(evil_store: Path, tmp_path: Path) -> None:
    """export --format dot: no NUL byte, and Graphviz (when installed) renders it."""
    done = cli("export", "--format", "dot", "--db", str(evil_store))
    print(f"exit {done.returncode}; NUL bytes: {done.stdout.count(0)}")
    assert (0, 0) == (done.returncode, done.stdout.count(0))
    if shutil.which("dot"):
        rendered = subprocess.run(["dot", "-Tsvg"], input=done.stdout, capture_output=True, timeout=30, check=False)
        assert (0, b"") == (rendered.returncode, rendered.stderr)


# -- 17. `workflow-trace spool`: whole errors, dropping a destination ----------------------------------

LONG_ERROR = "the lineage endpoint refused this event because " + "antidisestablishmentarianism " * 7


@pytest.fixture
def two_destinations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, str]:
    """A spool with dead events of a server that refused them with a long message, and pending events of a
    server that is down. Returns the spool and the two servers' host:port."""
    spool = tmp_path / "spool.db"
    monkeypatch.setenv("WORKFLOW_TRACE_EXIT_TIMEOUT", "0.3")
    refusing = RecordingServer(lambda req: (400, LONG_ERROR.encode(), {"Content-Type": "text/plain"})).start()
    down = refused_url()
    try:
        for url in (refusing.url, down):
            backend = OpenLineageBackend(url, spool_path=spool, backoff_base=0.01, backoff_max=0.05)
            wt.configure(backend)
            with wt.workflow_step("spooled"):
                pass
            wt.flush(timeout=1)
            backend.close()
            wt.reset()
    finally:
        refusing.stop()
    return spool, refusing.url.split("//")[1], down.split("//")[1]


def _rows(listing: str) -> dict[str, str]:
    """``host:port`` -> the row of ``workflow-trace spool`` (the destination's whole line)."""
    rows = {}
    for line in listing.splitlines():
        if m := re.search(r"127\.0\.0\.1:\d+", line):
            rows[m.group(0)] = line
    return rows


def test_spool_last_error_is_not_cut_mid_word(two_destinations: tuple[Path, str, str]) -> None:
    """`workflow-trace spool`: the LAST ERROR column ends on a whole word of the error (or is the whole error)."""
    spool, refusing, _ = two_destinations
    listing = cli("spool", "--spool", str(spool)).stdout.decode()
    header = next(line for line in listing.splitlines() if "LAST ERROR" in line)
    shown = _rows(listing)[refusing][header.index("LAST ERROR"):].strip()
    last_word = shown.rstrip(".…").split()[-1]
    print(f"shown: {shown!r}")
    assert True is (last_word in LONG_ERROR.split() or shown.endswith(LONG_ERROR.strip())), last_word


def test_spool_verbose_shows_whole_errors(two_destinations: tuple[Path, str, str]) -> None:
    """`workflow-trace spool -v`: the whole last error is shown."""
    spool, _, _ = two_destinations
    done = cli("spool", "-v", "--spool", str(spool))
    text = " ".join(done.stdout.decode().split())
    print(f"exit {done.returncode}; stdout: {text!r}; stderr: {done.stderr.decode()!r}")
    assert (0, True) == (done.returncode, LONG_ERROR.strip() in text)


def test_spool_drop_destination_yes_drops_its_pending_events(two_destinations: tuple[Path, str, str]) -> None:
    """`spool drop --destination D --yes` drops D's pending events and leaves the other destination alone."""
    spool, refusing, down = two_destinations
    before = _rows(cli("spool", "--spool", str(spool)).stdout.decode())
    key = before[down].split()[0]
    done = cli("spool", "drop", "--destination", key, "--yes", "--spool", str(spool))
    after = _rows(cli("spool", "--spool", str(spool)).stdout.decode())
    print(f"drop exit {done.returncode}: {done.stdout.decode()!r} {done.stderr.decode()!r}\nafter: {after}")
    assert (0, [refusing]) == (done.returncode, sorted(after))


def test_spool_drop_destination_asks_and_does_nothing_on_no(two_destinations: tuple[Path, str, str]) -> None:
    """`spool drop --destination D` without --yes asks on stdin; answering 'n' drops nothing."""
    spool, _, down = two_destinations
    before = cli("spool", "--spool", str(spool)).stdout.decode()
    key = _rows(before)[down].split()[0]
    done = cli("spool", "drop", "--destination", key, "--spool", str(spool), input=b"n\n")
    said = done.stdout.decode() + done.stderr.decode()
    after = cli("spool", "--spool", str(spool)).stdout.decode()
    print(f"exit {done.returncode}: {said!r}")
    asked = done.returncode != 2 and bool(re.search(r"\?|\[y/n\]", said, re.I))
    assert (True, _rows(before)) == (asked, _rows(after))


# -- 18. the README's first commands work on a fresh machine ------------------------------------------


def _first_bash_block() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block is not None, "README.md has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _venv_problems(lines: list[str]) -> tuple[bool, list[str]]:
    """Whether the block creates a venv, and its commands that pip-install outside one."""
    text = "\n".join(lines)
    creates = bool(re.search(r"python3? -m venv (\S+)", text))
    bare_pip = [part.strip() for line in lines for part in line.split("&&")
                if re.search(r"\bpip3? install\b", part) and not re.search(r"(\.?venv|\benv)/bin/", part)]
    return creates, bare_pip


def test_readme_first_commands_use_a_virtual_environment() -> None:
    """The README's first bash block creates a venv and runs pip/python from it (no bare `pip install`)."""
    lines = _first_bash_block()
    print("README first block:", *lines, sep="\n  ")
    assert (True, []) == _venv_problems(lines)


@pytest.mark.skipif(os.environ.get("WT_SLOW") != "1", reason="slow (a fresh clone and pip install): set WT_SLOW=1")
def test_readme_first_commands_run_in_a_fresh_clone(tmp_path: Path) -> None:
    """Run the README's first bash block, as written, in a fresh clone: every command exits 0."""
    lines = _first_bash_block()
    if _venv_problems(lines) != (True, []):
        pytest.fail("the README's commands install outside a virtual environment: not running them here")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOW_TRACE_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "venv" not in p)
    for line in lines:
        done = subprocess.run(["bash", "-ec", line], cwd=clone, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        print(f"$ {line}\nexit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        assert 0 == done.returncode, line
