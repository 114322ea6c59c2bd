"""A stand-in for ``systemctl`` in deploy tests: logs every call, keeps units in a state file.

Installed as an executable script (``install_fake_systemctl``) and given to
``gitops-mail deploy --systemctl``. It understands what deploy asks:

- ``daemon-reload``, ``enable UNIT...``, ``is-enabled UNIT...``, ``is-active UNIT...``;
- ``start``/``restart``/``stop gitops-mail.service``: runs the ExecStart= of the unit
  deploy installed (with its Environment= lines), detached, as systemd would: so a
  test sees the installed unit and the link it names actually run the daemon;
- ``start chasquid-*.socket``: starts ``gitops-mail supervise`` with the host
  settings the unit names, standing in for socket-activated chasquid (the host
  settings say ``service: supervise``).

Every unit of one pretend host runs in that host's own network namespace (a
holder process made with ``unshare --net`` at the first start, entered with
``nsenter``): several hosts deployed from one conf repo serve the same
loopback ports, as several real servers would, without fighting over them.

Every call is appended to ``calls.log`` as one JSON list (argv without the program).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

STATE_DIR = Path(os.environ.get("FAKE_SYSTEMCTL_DIR", Path(__file__).parent))
UNIT_DIR = Path(os.environ.get("FAKE_SYSTEMCTL_UNITS", "/nonexistent"))


def _state() -> dict[str, object]:
    path = STATE_DIR / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"enabled": [], "pids": {}}


def _save(state: dict[str, object]) -> None:
    (STATE_DIR / "state.json").write_text(json.dumps(state))


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _unit(name: str) -> tuple[list[str], dict[str, str]]:
    argv: list[str] = []
    env: dict[str, str] = {}
    for line in (UNIT_DIR / name).read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "ExecStart":
            argv = shlex.split(value)
        elif key == "Environment":
            env.update(item.split("=", 1) for item in shlex.split(value))
    return argv, env


def _holder(state: dict[str, object]) -> int:
    """The process that holds this host's network namespace (made at the first call)."""
    pid = state.get("holder")
    if isinstance(pid, int) and _alive(pid):
        return pid
    child = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && exec sleep infinity"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # the caller's stdout is an SSH channel: it must close
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60  # only bounds a namespace that never comes up
    while Path(f"/proc/{child.pid}/comm").read_text().strip() != "sleep":
        if time.monotonic() > deadline:
            raise SystemExit("the host's network namespace did not come up")
        time.sleep(0.005)
    state["holder"] = child.pid
    return child.pid


def _spawn(state: dict[str, object], argv: list[str], env: dict[str, str], log: str) -> int:
    enter = ["nsenter", f"--net=/proc/{_holder(state)}/ns/net", "--"]
    with (STATE_DIR / log).open("ab") as out:
        child = subprocess.Popen(
            [*enter, *argv],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    return child.pid


def _start(state: dict[str, object], unit: str) -> None:
    pids = state["pids"]
    assert isinstance(pids, dict)
    if unit.startswith("chasquid-"):
        unit = "chasquid.service"
    if pids.get(unit) and _alive(pids[unit]):
        return
    argv, env = _unit("gitops-mail.service")
    if unit == "chasquid.service":
        argv = [argv[0], "supervise"]
    pids[unit] = _spawn(state, argv, env, f"{unit}.log")


def _stop(state: dict[str, object], unit: str) -> None:
    pids = state["pids"]
    assert isinstance(pids, dict)
    pid = pids.pop(unit, None)
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def main(argv: list[str]) -> int:
    with (STATE_DIR / "calls.log").open("a") as log:
        log.write(json.dumps(argv) + "\n")
    verb, units = argv[0], argv[1:]
    state = _state()
    enabled, pids = state["enabled"], state["pids"]
    assert isinstance(enabled, list) and isinstance(pids, dict)
    code = 0
    if verb == "enable":
        enabled += [u for u in units if u not in enabled]
    elif verb == "is-enabled":
        for unit in units:
            print("enabled" if unit in enabled else "disabled")
            code |= unit not in enabled
    elif verb == "is-active":
        for unit in units:
            key = "chasquid.service" if unit.startswith("chasquid-") else unit
            running = bool(pids.get(key)) and _alive(pids[key])
            print("active" if running else "inactive")
            code |= not running
        return int(code)
    elif verb in ("start", "restart", "stop"):
        for unit in units:
            if verb != "start" and not unit.startswith("chasquid-"):
                _stop(state, unit)
            if verb != "stop":
                _start(state, unit)
    _save(state)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


def install_fake_systemctl(where: Path, unit_dir: Path) -> Path:
    """An executable ``where/systemctl`` running this module with its state in ``where``.

    The paths are written into the script: commands that arrive over SSH have
    no environment of the test's.
    """
    where.mkdir(parents=True, exist_ok=True)
    script = where / "systemctl"
    script.write_text(
        "#!/bin/sh\n"
        f"FAKE_SYSTEMCTL_DIR={shlex.quote(str(where))} "
        f"FAKE_SYSTEMCTL_UNITS={shlex.quote(str(unit_dir))} "
        f'exec {shlex.quote(sys.executable)} {shlex.quote(__file__)} "$@"\n'
    )
    script.chmod(0o755)
    return script


def calls(where: Path) -> list[list[str]]:
    path = where / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stop_all(where: Path) -> None:
    """End every unit the fake started, and the host's namespace holder."""
    state = _state_at(where)
    for pid in [*dict(state.get("pids", {})).values(), state.get("holder")]:
        if isinstance(pid, int) and _alive(pid):
            os.kill(pid, signal.SIGTERM)
    for pid in [*dict(state.get("pids", {})).values(), state.get("holder")]:
        deadline = time.monotonic() + 30
        while isinstance(pid, int) and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def _state_at(where: Path) -> dict[str, object]:
    path = where / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}
