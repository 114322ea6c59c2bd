"""procs.spawn under a burst of signals: whatever it started is gone when it ends.

A harness process raises an exception from its SIGTERM handler, as an apply
does (``Terminated``), and runs ``procs.spawn`` round after round while a
thread sends it one SIGTERM per round, each a little later than the one
before, so the signal lands at many points of the start, the read and the
stop. Each child opens a FIFO the test holds and starts a grandchild that
inherits it, and ignores SIGTERM, so only the SIGKILL that ends a stop ends
them. When the harness has exited, the FIFO reads its end exactly when the
last of them has died: the test waits for that, not for a time.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from pathlib import Path

ROUNDS = 120
STEP = 0.0002  # seconds added to the signal's delay each round: spread over 0 to ~12 ms
HANG = 60  # seconds: only a bound on a hang; a correct run is done when the FIFO ends

HARNESS = """
import signal, sys, threading, time
from gitops_mail.host import procs

class Stop(BaseException):
    pass

def stop(signum, frame):
    raise Stop

signal.signal(signal.SIGTERM, stop)
fifo, rounds, step = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
child = 'exec 3>"$1"; trap "" TERM; echo started; sleep 1000 & wait'
main = threading.main_thread().ident

def send(delay):
    time.sleep(delay)  # where the signal lands: the thing varied, not a wait
    signal.pthread_kill(main, signal.SIGTERM)

caught = 0
for i in range(rounds):
    sender = threading.Thread(target=send, args=((i % 60) * step,))
    try:
        sender.start()
        with procs.spawn(["sh", "-c", child, "held", fifo], stop_timeout=0.001) as started:
            started.stdout.readline()
        sender.join()  # the signal lands here at the latest
    except Stop:
        caught += 1
    sender.join()
print(caught)
"""


def test_no_process_a_spawn_started_outlives_a_burst_of_signals(tmp_path: Path) -> None:
    fifo = tmp_path / "held"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        done = subprocess.run(
            [sys.executable, "-c", HARNESS, str(fifo), str(ROUNDS), str(STEP)],
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == f"{ROUNDS}\n"  # every signal landed while the harness ran
        ended, _, _ = select.select([reader], [], [], HANG)  # the last holder's death
        assert ended, f"still running: {survivors(fifo)}"
        assert os.read(reader, 1) == b""
        assert [describe(p) for p in survivors(fifo)] == []  # nor one that had not opened it yet
    finally:
        os.close(reader)
        for pid in survivors(fifo):
            os.kill(pid, signal.SIGKILL)


def survivors(fifo: Path) -> list[int]:
    """Live (not zombie) processes that name ``fifo`` on their command line or hold it open."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat_line = (entry / "stat").read_text()
            named = str(fifo).encode() in (entry / "cmdline").read_bytes()
            holds = any(
                os.readlink(fd) == str(fifo) for fd in (entry / "fd").iterdir() if not named
            )
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if (named or holds) and stat_line[stat_line.rindex(")") + 2] not in "ZX":
            found.append(int(entry.name))
    return found


def describe(pid: int) -> str:
    proc = Path("/proc", str(pid))
    try:
        return f"{pid}: {(proc / 'stat').read_text().strip()} {(proc / 'cmdline').read_bytes()!r}"
    except (FileNotFoundError, ProcessLookupError):
        return f"{pid}: gone"
