"""Daemon benchmark: push to live, the idle daemon, RSS after many reconciles.

The ``scripts/demo`` sandbox with the example conf (its catch-all alias
removed, so an unknown address gets 550): a bare repo with the hooks of
``gitops-mail hooks install``, a real chasquid under ``gitops-mail
supervise`` and ``gitops-mail daemon`` watching the bare repo (inotify).
Everything runs inside the private netns (``bench/__main__.py``).

1. Push to live: each push adds one new alias from a clone; the time from the
   start of ``git push`` (pre-receive validation and post-receive wait
   included: the push returns after both) to RCPT TO the new alias answered
   250 on chasquid's SMTP port, and ``git push`` alone. Each push is split
   with the ref's mtime and the daemon's ``reconcile.start``/``end`` events.
2. Idle: the daemon's CPU over a quiet minute (all its threads, and any child
   it reaped) and its RSS.
3. RSS growth over many reconciles, each a full pass of the daemon's worker
   over a new commit (validate, render, pre-flight, swap, restart, probes):
   a chain of commits, each one alias different from the base, made at once
   with ``git fast-import``, then ``git update-ref`` moves main to the next
   one as soon as the previous one is live.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.apply import _cert, _example_repo, _host, _supervised
from bench.core import _git
from bench.harness import GITOPS_MAIL, cpu_seconds, for_chasquid, memory_mb, ms_row, poll, rcpt

PUSHES, RECONCILES, IDLE_S = 20, 1000, 60.0
LIVE_DEADLINE_S = 20.0  # a push not live by then fails the benchmark
SMTP_PORT = 2025  # bench.apply.CONF
ALIASES = "chasquid/domains/example.com/aliases"


@dataclass(frozen=True)
class Box:
    root: Path
    bare: Path
    host: Path
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "GITOPS_MAIL_CONFIG": str(self.host)}

    def applied(self) -> str | None:
        try:
            return str(json.loads((self.state_dir / "state.json").read_bytes())["applied"])
        except (OSError, ValueError, KeyError):
            return None

    def status(self) -> dict[str, Any]:
        try:
            found: dict[str, Any] = json.loads((self.state_dir / "daemon.json").read_bytes())
        except (OSError, ValueError):
            return {}
        return found

    def tip(self) -> str:
        return _out(self.bare, "rev-parse", "refs/heads/main")


def _out(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _sandbox(root: Path) -> Box:
    repo = _example_repo(root, _cert(root))
    aliases = repo / ALIASES
    aliases.write_text(aliases.read_text().replace("*: you@gmail.com\n", ""))
    _git(repo, "commit", "-qam", "no catch-all: an unknown address gets 550")
    bare = root / "mail-conf.git"
    _git(root, "clone", "-q", "--bare", str(repo), str(bare))
    host = _host(root, bare)
    box = Box(root, bare, host, root / "state")
    subprocess.run(
        [GITOPS_MAIL, "hooks", "install", str(bare)], env=box.env, capture_output=True, check=True
    )
    return box


@contextmanager
def _daemon(box: Box) -> Iterator[int]:
    with open(box.root / "daemon.log", "wb") as log:
        proc = subprocess.Popen(
            [GITOPS_MAIL, "daemon"], env=box.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    try:
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _is_applied(box: Box, revision: str) -> bool:
    return box.applied() == revision


def _settled(box: Box) -> bool:
    status = box.status()
    idle = status.get("state") == "idle" and not status.get("pending")
    return idle and box.applied() == box.tip()


# --- 1. push to live --------------------------------------------------------------------


def _events(box: Box, revision: str) -> dict[str, float]:
    """Unix times of the daemon's ``reconcile.start`` and ``reconcile.end`` for ``revision``."""
    found = {}
    for line in (box.root / "daemon.log").read_text().splitlines():
        if line.startswith("{") and revision in line:
            event = json.loads(line)
            if event.get("revision") == revision:
                found[event["event"]] = datetime.fromisoformat(event["timestamp"]).timestamp()
    return found


def _one_push(box: Box, work: Path, i: int) -> dict[str, float]:
    _git(work, "pull", "-q", "--ff-only")  # the daemon may have committed back
    address = f"live{i}@example.com"
    with (work / ALIASES).open("a") as f:
        f.write(f"live{i}: postmaster\n")
    _git(work, "commit", "-qam", f"alias live{i}")
    if rcpt(SMTP_PORT, address) != 550:
        raise RuntimeError(f"{address} is accepted before its push")
    started, clock = time.time(), time.perf_counter()
    done = subprocess.run(
        ["git", "push", "origin", "main"], cwd=work, capture_output=True, check=False
    )
    pushed = time.perf_counter() - clock
    poll(
        lambda: rcpt(SMTP_PORT, address) == 250, LIVE_DEADLINE_S, f"{address} to be accepted", 0.002
    )
    live = time.perf_counter() - clock
    revision = _out(work, "rev-parse", "HEAD")
    if done.returncode != 0 or f"applied {revision[:7]}" not in done.stderr.decode():
        raise RuntimeError(f"push {i} did not report applied:\n{done.stderr.decode()}")
    ref_at = (box.bare / "refs" / "heads" / "main").stat().st_mtime
    recorded_at = (box.state_dir / "state.json").stat().st_mtime  # the result, in history
    start = _events(box, revision)["reconcile.start"]
    return {
        "live": live,
        "push": pushed,
        "to_ref": ref_at - started,  # pack transfer and pre-receive, until git moved the ref
        "to_reconcile": start - ref_at,  # inotify, queue, the worker's look at the tip
        "reconcile": recorded_at - start,  # until the result is in state.json
        "to_push_end": started + pushed - recorded_at,  # post-receive noticing, git ending
        "to_live": live - pushed,  # RCPT 250 after the push returned
    }


def _push_rows(box: Box, pushes: int) -> list[dict[str, object]]:
    work = box.root / "work"
    _git(box.root, "clone", "-q", str(box.bare), str(work))
    samples = []
    for i in range(pushes + 1):  # the first warms the page cache
        samples.append(_one_push(box, work, i))
        poll(lambda: _settled(box), 30, "the daemon to settle")
    samples = samples[1:]
    live = ms_row(
        "push to live: git push start -> RCPT 250",
        "p50 <= 1000 ms, p95 <= 2000 ms",
        [s["live"] for s in samples],
    )
    live["phases_ms"] = {
        key: statistics.median(s[key] for s in samples) * 1000
        for key in ("to_ref", "to_reconcile", "reconcile", "to_push_end", "to_live")
    }
    live["reconcile_phases_ms"] = _recorded_phases(box, pushes)
    push = ms_row("git push alone (both hooks)", "-", [s["push"] for s in samples])
    return [live, push]


def _recorded_phases(box: Box, count: int) -> dict[str, float]:
    """The median of each phase of the last ``count`` applied attempts, from ``history``."""
    history = json.loads((box.state_dir / "state.json").read_bytes())["history"]
    applied = [a for a in history if a["result"] == "applied"][:count]
    by_phase: dict[str, list[float]] = {}
    for attempt in applied:
        for phase, ms in attempt["phases_ms"].items():
            by_phase.setdefault(phase, []).append(ms)
        by_phase.setdefault("total", []).append(attempt["duration_ms"])
    return {phase: statistics.median(v) for phase, v in by_phase.items()}


def _hook_rows(box: Box, runs: int) -> list[dict[str, object]]:
    """Each installed hook run alone on the live tip, as git runs it (stdin, cwd)."""
    zero, tip = "0" * 40, box.tip()
    cases = {
        "pre-receive hook alone (validates the tip)": ("pre-receive", "main"),
        "post-receive hook alone (start-up: a ref it ignores)": ("post-receive", "other"),
    }
    rows = []
    for what, (hook, branch) in cases.items():
        line = f"{zero} {tip} refs/heads/{branch}\n".encode()
        samples = []
        for _ in range(runs + 1):
            clock = time.perf_counter()
            subprocess.run(
                [box.bare / "hooks" / hook],
                cwd=box.bare,
                input=line,
                capture_output=True,
                check=True,
            )
            samples.append(time.perf_counter() - clock)
        rows.append(ms_row(what, "-", samples[1:]))
    return rows


# --- 2. idle ----------------------------------------------------------------------------


def _idle_row(pid: int, seconds: float) -> dict[str, object]:
    cpu, clock = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    percent = (cpu_seconds(pid) - cpu) / (time.monotonic() - clock) * 100
    memory = memory_mb(pid)
    return {
        "what": f"idle daemon over {seconds:g} s",
        "target": "<= 1 % CPU, <= 80 MB RSS",
        "cpu_percent": round(percent, 3),
        "rss_mb": round(memory["VmRSS"], 1),
        "hwm_mb": round(memory["VmHWM"], 1),
        "summary": f"CPU {percent:.2f} %, RSS {memory['VmRSS']:.1f} MB "
        f"(peak {memory['VmHWM']:.1f} MB)",
    }


# --- 3. RSS growth ----------------------------------------------------------------------


def _chain(box: Box, count: int) -> list[str]:
    """``count`` commits on top of main, each main's aliases plus one ``grow<N>`` alias."""
    base = _out(box.bare, "show", f"main:{ALIASES}") + "\n"
    stream = []
    for i in range(count):
        content, message = f"{base}grow{i}: postmaster\n".encode(), f"alias grow{i}".encode()
        stream += [
            b"commit refs/bench/chain",
            f"mark :{i + 1}".encode(),
            f"committer bench <bench@localhost> {1_700_000_000 + i} +0000".encode(),
            f"data {len(message)}".encode(),
            message,
            *([f"from {box.tip()}".encode()] if i == 0 else []),
            f"M 100644 inline {ALIASES}".encode(),
            f"data {len(content)}".encode(),
            content,
        ]
    marks = box.root / "marks"
    subprocess.run(
        ["git", "fast-import", "--quiet", f"--export-marks={marks}"],
        cwd=box.bare,
        input=b"\n".join(stream) + b"\n",
        check=True,
    )
    ids = dict(line.split() for line in marks.read_text().splitlines())
    return [ids[f":{i + 1}"] for i in range(count)]


def _growth_row(box: Box, pid: int, count: int) -> dict[str, object]:
    chain = _chain(box, count)
    before, clock, curve = memory_mb(pid)["VmRSS"], time.monotonic(), []
    cpu = cpu_seconds(pid)
    for i, revision in enumerate(chain, start=1):
        subprocess.run(["git", "update-ref", "refs/heads/main", revision], cwd=box.bare, check=True)
        poll(partial(_is_applied, box, revision), 30, f"reconcile {i} of {count}")
        if i % max(1, count // 10) == 0:
            curve.append(round(memory_mb(pid)["VmRSS"], 1))
    poll(lambda: _settled(box), 30, "the daemon to settle")
    seconds, memory = time.monotonic() - clock, memory_mb(pid)
    growth = memory["VmRSS"] - before
    cpu_ms = (cpu_seconds(pid) - cpu) / count * 1000  # with its git and pre-flight children
    return {
        "what": f"RSS growth over {count} reconciles (a new commit each)",
        "target": "<= 10 MB",
        "reconciles": count,
        "seconds": round(seconds, 1),
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(memory["VmRSS"], 1),
        "growth_mb": round(growth, 1),
        "hwm_mb": round(memory["VmHWM"], 1),
        "rss_every_tenth_mb": curve,
        "daemon_cpu_ms_per_reconcile": round(cpu_ms, 1),
        "summary": f"{before:.1f} -> {memory['VmRSS']:.1f} MB ({growth:+.1f} MB) "
        f"in {seconds:.0f} s",
    }


def run(
    pushes: int = PUSHES, reconciles: int = RECONCILES, idle_s: float = IDLE_S
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for_chasquid(root, root)
        box = _sandbox(root)
        with _supervised(box.host), _daemon(box) as pid:
            poll(lambda: _settled(box), 60, "the daemon's first pass")
            rows = _push_rows(box, pushes)
            rows += _hook_rows(box, pushes)
            rows.append(_idle_row(pid, idle_s))
            rows.append(_growth_row(box, pid, reconciles))
    return {"suite": "daemon", "rows": rows}
