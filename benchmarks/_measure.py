"""One child process, measured: wall time, CPU time, and the peak memory of its whole process tree.

Shared by the benchmark scripts. Peak memory is the largest sum over the child and every
descendant, sampled every 10 ms from /proc, of the resident set (RSS: pages a forked worker
shares with its parent count in both) and of the proportional set (PSS: a shared page counts
once, split between its sharers): work spread over worker processes is counted whole, which
the child's own ru_maxrss (also returned) would not do.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time


def _memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _descendants(pid: int) -> list[int]:
    """The process and everything below it, from /proc/<pid>/task/*/children."""
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children", "rb") as f:
                    stack.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def measure(argv: list[str], timeout: float | None = None, stdout=subprocess.DEVNULL, sample: bool = True) -> dict:
    """Run `argv` once. `wall` is None when it ran past `timeout` seconds (it is then killed).

    `sample=False` leaves memory unsampled (its fields 0): reading every process's
    smaps_rollup each 10 ms costs a core and locks the processes' memory maps while it reads,
    which slows a tree of forked workers more than one process (1-4 s of porter's 11 s scan of
    CPython's Modules/, under 1 s of a single-process peer's): time is measured apart."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=stdout, stderr=subprocess.PIPE)
    peak = [0, 0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sizes = [_memory_kib(p) for p in _descendants(proc.pid)]
            peak[0] = max(peak[0], sum(r for r, _ in sizes))
            peak[1] = max(peak[1], sum(p for _, p in sizes))
            done.wait(0.01)

    def kill() -> None:
        for p in reversed(_descendants(proc.pid)):
            try:
                os.kill(p, 9)
            except OSError:
                pass

    sampler = threading.Thread(target=sample, daemon=True)
    if sample:
        sampler.start()
    timer = threading.Timer(timeout, kill) if timeout else None
    if timer is not None:
        timer.start()
    stderr = proc.stderr.read() if proc.stderr else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall: float | None = time.perf_counter() - start
    if timer is not None:
        timer.cancel()
        if wall is not None and wall >= timeout:
            wall = None
    done.set()
    if sample:
        sampler.join()
    return {"wall": wall, "tree_peak_mib": peak[0] / 1024, "tree_pss_mib": peak[1] / 1024,
            "maxrss_mib": usage.ru_maxrss / 1024,
            "cpu": usage.ru_utime + usage.ru_stime, "code": os.waitstatus_to_exitcode(status),
            "stderr": stderr.decode("utf-8", "replace")}
