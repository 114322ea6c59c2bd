"""Timing a command in a fresh process: wall time and the child's peak RSS."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"
GITOPS_MAIL = str(VENV_BIN / "gitops-mail")


def measure(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    ok: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
) -> tuple[float, float]:
    """Run argv once; return (seconds, peak RSS of the child in MB)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in ok:
            err.seek(0)
            message = err.read().decode(errors="replace")
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {message}")
    return elapsed, usage.ru_maxrss / 1024


def row(
    what: str,
    target: str,
    argv: Sequence[str],
    runs: int,
    *,
    before: Callable[[], object] | None = None,
    **kw: Any,
) -> dict[str, object]:
    """The median of ``runs`` fresh runs (after one warm-up); ``before`` runs untimed first."""
    samples = []
    for _ in range(runs + 1):
        if before is not None:
            before()
        samples.append(measure(argv, **kw))
    samples = samples[1:]  # the first warms the page cache
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
