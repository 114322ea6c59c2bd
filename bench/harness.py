"""Timing a command in a fresh process: wall time and the child's peak RSS."""

from __future__ import annotations

import os
import smtplib
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


def percentile(samples: Sequence[float], pct: int) -> float:
    """The ``pct``-th percentile, interpolated between the two nearest samples."""
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1]


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` so far: every thread's user and system time, and that of
    the child processes it has reaped (``/proc/PID/stat`` fields 14 to 17)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of ``pid``, in MB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) / 1024
    return found


def poll(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.005) -> Any:
    """Call ``predicate`` every ``every`` seconds until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
    return value


def rcpt(port: int, address: str) -> int | None:
    """chasquid's reply to RCPT TO ``address`` after ``MAIL FROM:<>``; None if it is down."""
    try:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.test", timeout=5) as smtp:
            smtp.ehlo()
            smtp.mail("<>")
            return smtp.rcpt(address)[0]
    except (OSError, smtplib.SMTPException):
        return None


def ms_row(what: str, target: str, samples: list[float]) -> dict[str, object]:
    """A row of the median, p95 and extremes of ``samples`` (seconds), in ms."""
    ms = [s * 1000 for s in samples]
    return {
        "what": what,
        "target": target,
        "runs": len(ms),
        "median_ms": statistics.median(ms),
        "p95_ms": percentile(ms, 95),
        "min_ms": min(ms),
        "max_ms": max(ms),
        "samples_ms": [round(s, 1) for s in ms],
    }


def for_chasquid(tmp: Path, root: Path) -> None:
    """Let chasquid, which runs as the chasquid user, reach ``root`` and write its own
    data dir and mail log there (``TemporaryDirectory`` makes ``tmp`` 0700)."""
    import shutil  # noqa: PLC0415 - only the sandboxes need it

    for directory in {tmp, root}:
        directory.chmod(0o711)
    (root / "data").mkdir(exist_ok=True)
    (root / "mail.log").touch()
    for path in (root / "data", root / "mail.log"):
        shutil.chown(path, "chasquid", "chasquid")
