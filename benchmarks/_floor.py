"""The floor of a durable decorator in Python: the least a ``wrapt`` wrapper must do to journal what a call
read and wrote.

Hand-written for one function each, with none of workflow_trace's generality: no argument binding, no
containment, no cards, no backends. The lines are JSON (sequence number, timestamp, task, run, then the node
or the run's status) copied into a memory-mapped file under a lock: the same durability as workflow_trace's
journal (the lines are in the kernel's page cache when the call returns). Two cases:

* :func:`floor_traced3`, inside a run: each of 3 values checked against the run's set, a line per new
  node, the inputs' lines copied before the call and the output's line after it;
* :func:`floor_implicit`, a run per call: a time-ordered run id, then "started" and the input before the
  call, the output and "finished" after it (2 copies, 4 lines).

What workflow_trace's cases cost above these is the price of its generality.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
import time
from json.encoder import encode_basestring
from typing import Any

import wrapt


class FloorJournal:
    """A mapped file that lines are copied into (wraps around when full: only the copying is measured)."""

    def __init__(self, path: str, size: int = 64 << 20) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.posix_fallocate(fd, 0, size)
        self.mm = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0))
        os.close(fd)
        self.end = 0
        self.lock = threading.Lock()

    def append(self, data: bytes) -> None:
        with self.lock:
            end = self.end + len(data)
            if end > len(self.mm):
                self.end, end = 0, len(data)
            self.mm[self.end : end] = data
            self.end = end

    def close(self) -> None:
        self.mm.close()


def _line(kind: int, seq: int, task: int, run: str, rest: str) -> str:
    t = str(time.time_ns())
    return f"[{kind},{seq},{t[:-9]}.{t[-9:]},{task},{run},{rest}]\n"


def floor_implicit(journal: FloorJournal) -> Any:
    """``traced(project_id, path) -> path`` of bench_hot_path_v2, a run per call, journaled into ``journal``."""
    seq = itertools.count(1).__next__
    runs = itertools.count(1).__next__

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        t = f"{time.time_ns() // 1_000_000:012x}"
        run = f'"{t[:8]}-{t[8:]}-7000-8000-{runs():012x}","traced",null'
        journal.append((_line(0, seq(), 1, run, "null")
                        + _line(1, seq(), 1, run, f'{{"kind":"project","id":{args[0]}}},null,null')).encode())
        result = wrapped(*args, **kwargs)
        journal.append((_line(2, seq(), 1, run, f'{{"kind":"file","path":{encode_basestring(result)}}},null,null')
                        + _line(3, seq(), 1, run, '"ok",null,null,null')).encode())
        return result

    def traced(project_id: int, path: str) -> str:
        return path

    return wrapt.FunctionWrapper(traced, wrapper)


def floor_traced3(journal: FloorJournal) -> Any:
    """``traced3`` of bench_hot_path_v2, recorded by the minimal wrapper into ``journal``, in one run."""
    seen: set[tuple[str, Any]] = set()
    seq = itertools.count(1).__next__
    run = '"01900000-0000-7000-8000-000000000001","traced3",null'  # a run's id, name and parent

    def line(kind: int, node: str) -> str:
        return _line(kind, seq(), 1, run, f"{node},null,null")

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        lines = []
        for kind, value in (("project", args[0]), ("dataset", args[1])):
            if (kind, value) not in seen:
                seen.add((kind, value))
                lines.append(line(1, f'{{"kind":"{kind}","id":{value}}}'))
        if lines:
            journal.append("".join(lines).encode())
        result = wrapped(*args, **kwargs)
        if ("file", result) not in seen:
            seen.add(("file", result))
            journal.append(line(2, f'{{"kind":"file","path":{encode_basestring(result)}}}').encode())
        return result

    def traced3(project_id: int, dataset_id: int, n: int) -> str:
        return f"/runs/{n}/best.pt"

    return wrapt.FunctionWrapper(traced3, wrapper)
