"""The code version of this process: the git commit of the script's repository and whether its work tree
was dirty — read from ``.git`` itself, without a git binary — plus Python version, host and pid.

Which repository: the one holding the script (``sys.argv[0]``), else the current directory. The commit is
``HEAD`` resolved through loose refs and ``packed-refs`` (worktrees and submodules, whose ``.git`` is a
file, included). *Dirty* means a tracked file differs from the index: missing, another size, or another
content (hashed when its modification time differs, as ``git status`` does). Changes that are only staged,
and untracked files, do not count; an index format this reader does not know gives ``None`` (unknown).
The local store reads this once per process, in its writer thread, never on the call path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CodeVersion", "code_version", "file_digest", "find_repository", "git_commit", "git_dirty"]


@dataclass(frozen=True)
class CodeVersion:
    """What ran: the git commit and dirty flag (``None`` outside a repository), Python, host, pid."""

    git_commit: str | None
    git_dirty: bool | None
    git_root: str | None
    python: str
    host: str
    pid: int


def find_repository(start: Path) -> tuple[Path, Path] | None:
    """``(work tree, git dir)`` of the repository holding ``start``, or ``None``."""
    folder = start if start.is_dir() else start.parent
    for candidate in (folder, *folder.parents):
        dot_git = candidate / ".git"
        if dot_git.is_dir():
            return candidate, dot_git
        if dot_git.is_file():
            text = dot_git.read_text(errors="replace").strip()
            if text.startswith("gitdir:"):  # relative to the work tree, or absolute (the join keeps it)
                return candidate, (candidate / text[len("gitdir:"):].strip()).resolve()
    return None


def _common_dir(gitdir: Path) -> Path:
    common = gitdir / "commondir"
    if common.is_file():  # relative to the git dir, or absolute (the join keeps it)
        return (gitdir / common.read_text().strip()).resolve()
    return gitdir


def _resolve_ref(gitdir: Path, ref: str) -> str | None:
    for base in (gitdir, _common_dir(gitdir)):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip() or None
        packed = base / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(errors="replace").splitlines():
                if line and not line.startswith(("#", "^")):
                    sha, _, name = line.partition(" ")
                    if name.strip() == ref:
                        return sha.strip()
    return None


def git_commit(gitdir: Path) -> str | None:
    """The commit ``HEAD`` names (``None`` in a repository without commits)."""
    head: str | None = (gitdir / "HEAD").read_text().strip()
    for _ in range(5):  # symbolic refs may chain
        if head is None or not head.startswith("ref:"):
            return head if head is not None and len(head) in (40, 64) else None
        head = _resolve_ref(gitdir, head[4:].strip())
    return None


def file_digest(path: Path, digest: hashlib._Hash) -> hashlib._Hash:
    """``digest`` updated with the file's bytes, read in 1 MiB chunks (``hashlib.file_digest`` is 3.11+)."""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest


def git_dirty(worktree: Path, gitdir: Path) -> bool | None:
    """Whether a tracked file differs from the index (see the module docstring); ``None``: unknown."""
    index = gitdir / "index"
    if not index.is_file():
        return None
    data = index.read_bytes()
    if len(data) < 12 or data[:4] != b"DIRC":
        return None
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3):
        return None
    hash_len, algorithm = (32, "sha256") if len(data) > 12 and _is_sha256(gitdir) else (20, "sha1")
    pos = 12
    for _ in range(count):
        fields = struct.unpack(">10I", data[pos : pos + 40])
        mtime_s, mtime_ns, mode, size = fields[2], fields[3], fields[6], fields[9]
        sha = data[pos + 40 : pos + 40 + hash_len]
        flags = struct.unpack(">H", data[pos + 40 + hash_len : pos + 42 + hash_len])[0]
        name_at = pos + 42 + hash_len + (2 if version >= 3 and flags & 0x4000 else 0)
        end = data.index(b"\x00", name_at)
        name = data[name_at:end].decode("utf-8", "surrogateescape")
        pos = pos + ((end - pos) // 8 + 1) * 8
        if (flags >> 12) & 3 or (mode >> 12) == 0o16:  # conflict stages, submodules
            continue
        path = worktree / name
        try:
            st = os.lstat(path)
        except OSError:
            return True
        if st.st_size != size and (mode >> 12) != 0o12:
            return True
        if int(st.st_mtime) == mtime_s and st.st_mtime_ns % 1_000_000_000 == mtime_ns and st.st_size == size:
            continue
        if (mode >> 12) == 0o12:  # a symbolic link: its target is the content
            content = os.readlink(path).encode("utf-8", "surrogateescape")
            digest = hashlib.new(algorithm, b"blob %d\x00" % len(content) + content).digest()
        else:
            digest = file_digest(path, hashlib.new(algorithm, b"blob %d\x00" % st.st_size)).digest()
        if digest != sha:
            return True
    return False


def _is_sha256(gitdir: Path) -> bool:
    config = _common_dir(gitdir) / "config"
    return config.is_file() and "objectformat = sha256" in config.read_text(errors="replace").replace("\t", "")


def code_version(argv0: str | None = None, cwd: str | None = None) -> CodeVersion:
    """The code version of the script ``argv0`` (default ``sys.argv[0]``) run from ``cwd``. Never raises
    for a broken or unreadable repository: what cannot be read is ``None``."""
    script = argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")
    base = Path(cwd or os.getcwd())
    start = (base / script) if script and script not in ("-c", "-m") and os.path.exists(base / script) else base
    commit: str | None = None
    dirty: bool | None = None
    root: str | None = None
    with contextlib.suppress(OSError, ValueError, struct.error, IndexError):  # what was read is kept
        found = find_repository(start.resolve())
        if found is not None:
            worktree, gitdir = found
            root = str(worktree)
            commit = git_commit(gitdir)
            dirty = git_dirty(worktree, gitdir)
    return CodeVersion(commit, dirty, root, sys.version.split()[0], socket.gethostname(), os.getpid())
