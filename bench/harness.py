"""Timing a command in a fresh process: wall time and the child's peak RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
GITOPS_MAIL = str(VENV_BIN / "gitops-mail")


def measure(
    argv: Sequence[str], *, cwd: Path | None = None, ok: Sequence[int] = (0,)
) -> tuple[float, float]:
    """Run argv once; return (seconds, peak RSS in MB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise RuntimeError(f"{' '.join(argv)} exited {code}: {err}")
    if proc.stderr:
        proc.stderr.close()
    return elapsed, usage.ru_maxrss / 1024


def row(what: str, target: str, argv: Sequence[str], runs: int, **kw: object) -> dict[str, object]:
    measure(argv, **kw)  # warm the page cache and .pyc files
    samples = [measure(argv, **kw) for _ in range(runs)]
    times = [s[0] * 1000 for s in samples]
    return {
        "what": what,
        "target": target,
        "runs": runs,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "peak_rss_mb": max(s[1] for s in samples),
        "argv": list(argv),
    }
