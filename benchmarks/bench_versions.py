"""Time and disk used to version a project folder on the local store (``SQLiteBackend.create_version``).

Two folders: 10,000 small files (1-8 KiB each, random bytes, in 100 sub-folders) and one file of 1 GiB
(written with ``os.urandom`` in 16 MiB chunks). For each: the first version (hash, copy, verify the copy),
a second call on the unchanged folder (only ``stat``: sizes and mtimes match the last manifest), the same
with ``rehash=True`` (every file read and hashed again), and the first version in hard-link mode
(``WORKFLOW_TRACE_VERSION_LINKS=hardlink``, into a fresh store), then a restore. "disk" is what the store's
folder grew by (allocated blocks of the objects and the database file).

Run: python benchmarks/bench_versions.py [--small N] [--big-mib N]   (about a minute; needs ~2.5 GB free in
the temporary folder, ``$TMPDIR``; everything is deleted at the end)
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from workflow_trace._nodes import Project
from workflow_trace.backends.sqlite import SQLiteBackend

T = TypeVar("T")

CHUNK = 16 << 20


def inodes(folder: Path) -> set[tuple[int, int]]:
    """The (device, inode) of every file under ``folder``."""
    found: set[tuple[int, int]] = set()
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            found.add((st.st_dev, st.st_ino))
    return found


def disk_usage(folder: Path, shared: set[tuple[int, int]] | None = None) -> int:
    """Bytes allocated under ``folder``: hard links counted once, files also in ``shared`` not at all."""
    seen: set[tuple[int, int]] = set(shared or ())
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def size(n: float) -> str:
    """Bytes for people."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover - the loop returns first


def make_small_files(root: Path, count: int) -> int:
    """``count`` files of 1-8 KiB in 100 sub-folders; returns the bytes written."""
    rng = random.Random(0)
    total = 0
    for i in range(count):
        folder = root / f"d{i % 100:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = os.urandom(rng.randint(1024, 8192))
        (folder / f"f{i:05d}.bin").write_bytes(data)
        total += len(data)
    return total


def make_big_file(root: Path, mib: int) -> int:
    """One file of ``mib`` MiB of random bytes; returns the bytes written."""
    root.mkdir(parents=True, exist_ok=True)
    left = mib << 20
    with open(root / "big.bin", "wb") as fh:
        while left:
            chunk = os.urandom(min(CHUNK, left))
            fh.write(chunk)
            left -= len(chunk)
    return mib << 20


def measure(store: SQLiteBackend, data: Path, fn: Callable[[], T]) -> tuple[T, float, int]:
    """Run ``fn``; its result, the seconds it took and how much the store's folder grew (files it shares
    with the project folder through hard links take no extra disk and are not counted)."""
    shared = inodes(data)
    before = disk_usage(store.path.parent, shared)
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, disk_usage(store.path.parent, shared) - before


def bench(label: str, data: Path, work: Path) -> list[tuple[str, str, str, str]]:
    """The rows of one folder: first, unchanged, unchanged with rehash, hard-link mode, restore."""
    rows: list[tuple[str, str, str, str]] = []
    project = Project(path=str(data))

    store = SQLiteBackend(work / "copies" / "workflow.db")
    store.local_versions()  # create the empty store first: its own size is not the version's
    first, seconds, grown = measure(store, data, lambda: store.create_version(project, "first", None))
    rows.append((label, "first version (copies)", f"{seconds:.2f} s", size(grown)))
    again, seconds, grown = measure(store, data, lambda: store.create_version(project, "again", None))
    assert again == first, "an unchanged folder must give the same version"
    rows.append(("", "unchanged (stat only)", f"{seconds:.2f} s", size(grown)))
    versions = store.local_versions()
    again, seconds, grown = measure(store, data, lambda: versions.create(project, "again", None, rehash=True))
    assert again == first, "an unchanged folder must give the same version"
    rows.append(("", "unchanged, rehash=True", f"{seconds:.2f} s", size(grown)))
    restored, seconds, _ = measure(store, data, lambda: store.restore_version(project, first, None))
    rows.append(("", "restore (verified)", f"{seconds:.2f} s", f"{size(disk_usage(Path(restored.path or '')))} *"))
    shutil.rmtree(restored.path or "")
    store.close()

    os.environ["WORKFLOW_TRACE_VERSION_LINKS"] = "hardlink"
    try:
        linked = SQLiteBackend(work / "links" / "workflow.db")
        linked.local_versions()
        _, seconds, grown = measure(linked, data, lambda: linked.create_version(project, "first", None))
        rows.append(("", "first version (hard links)", f"{seconds:.2f} s", size(grown)))
        linked.close()
    finally:
        del os.environ["WORKFLOW_TRACE_VERSION_LINKS"]
    shutil.rmtree(work / "copies")
    shutil.rmtree(work / "links")
    return rows


def main() -> None:
    """Build the two folders in a temporary directory, version them, print the table, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000, help="how many small files (default 10,000)")
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the big file in MiB (default 1024)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wt-bench-versions-") as tmp:
        root = Path(tmp)
        rows: list[tuple[str, str, str, str]] = []
        start = time.perf_counter()
        written = make_small_files(root / "small", args.small)
        print(f"wrote {args.small:,} small files ({size(written)}) in {time.perf_counter() - start:.1f} s")
        rows += bench(f"{args.small:,} files, {size(written)}", root / "small", root / "work")
        shutil.rmtree(root / "small")
        start = time.perf_counter()
        written = make_big_file(root / "big", args.big_mib)
        print(f"wrote 1 file of {size(written)} in {time.perf_counter() - start:.1f} s")
        rows += bench(f"1 file, {size(written)}", root / "big", root / "work")
    header = ("folder", "run", "time", "disk")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    print()
    for row in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.rjust(widths[i]) if i >= 2 else cell.ljust(widths[i]) for i, cell in enumerate(row)))
    print("\n* restore: the size of the recreated folder (not the store's)")


if __name__ == "__main__":
    main()
