"""Deploy benchmark: ``gitops-mail deploy`` to real sshd "hosts" on loopback, in the netns.

The pretend hosts of the deploy tests (``tests/e2e/deploy_fixtures.py``):
an sshd each on 127.0.0.2-4, a directory each to install below (``--root``)
and a fake systemctl that runs the installed unit in the host's own network
namespace. The pusher account is made beforehand (the hosts share this
machine's accounts). Four figures, each the wall time of a fresh
``gitops-mail deploy`` process:

1. a first deploy of one host (wheelhouse cached, as from the second host on):
   upload, venv, unit, services, the push applied by the deployed daemon;
2. a first deploy of three hosts at once, against 1.5 x the time of one;
3. a redeploy of one host that changes nothing (target <= 5 s);
4. the same for three hosts at once.

The hosts share this machine's two cores, where real hosts would each have
their own: the remote half of three first deploys (pip installing the venv,
starting the daemon) runs three times on the same CPUs.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import ms_row

TESTS = Path(__file__).resolve().parent.parent / "tests"
FIRST_RUNS = 3
BENCH_PUSHER = "gitops-bench-pusher"


class _Workdir:
    """What ``World.conf_repo`` needs of tests/conftest.py's workdir: commit in a clone."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _git(path.parent, "init", "--quiet", "--initial-branch=main", str(path))

    def commit(self, files: dict[str, bytes | str], message: str) -> str:
        for name, data in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.encode() if isinstance(data, str) else data)
        _git(self.path, "add", "--all")
        _git(self.path, "commit", "--quiet", "-m", message)
        return _git(self.path, "rev-parse", "HEAD")


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.test"}
    env |= {"GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.test"}
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


class _Cert:
    def __init__(self, root: Path) -> None:
        self.fullchain, self.privkey = root / "fullchain.pem", root / "privkey.pem"
        argv = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        argv += ["-nodes", "-days", "30", "-subj", "/CN=mail.example.test"]
        argv += ["-addext", "subjectAltName=DNS:mail.example.test,IP:127.0.0.1"]
        argv += ["-keyout", str(self.privkey), "-out", str(self.fullchain)]
        subprocess.run(argv, check=True, capture_output=True)


def _users(root: Path) -> bytes:
    argv = [sys.executable, "-m", "gitops_mail", "user", "add", "ana@example.test"]
    subprocess.run(
        [*argv, "--password-stdin", "--create-domain"],
        cwd=root,
        input="bench-password\n",
        text=True,
        check=True,
        capture_output=True,
    )
    return (root / "chasquid/domains/example.test/users").read_bytes()


def _fresh(hosts: list[Any]) -> None:
    """Each host as before its first deploy: its units stopped, its directory empty."""
    from support import fakesystemctl  # noqa: PLC0415 - tests/ is on the path only here

    for host in hosts:
        fakesystemctl.stop_all(host.fake)
        for name in ("state.json", "calls.log"):
            (host.fake / name).unlink(missing_ok=True)
        shutil.rmtree(host.root)
        host.root.mkdir(mode=0o755)


def _time(
    world: Any,
    hosts: list[Any],
    conf: Path,
    steps: list[dict[str, float]] | None = None,
    cpu: list[tuple[float, float, float]] | None = None,
) -> float:
    """Wall time of one deploy process; each step's seconds (first host) into ``steps``;
    CPU seconds into ``cpu``: the deploy process with its children, the hosts' sshd
    with what their sessions ran (not the services they started detached), the machine."""
    argv = world.argv(*(h.spec for h in hosts), conf=conf)
    busy, remote = _busy_seconds(), _sshd_seconds(hosts)
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, env=world.env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if cpu is not None:
        here = usage.ru_utime + usage.ru_stime
        cpu.append((here, _sshd_seconds(hosts) - remote, _busy_seconds() - busy))
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"deploy exited {os.waitstatus_to_exitcode(status)}:\n{text}")
    if steps is not None:
        steps.append(_step_seconds(text, hosts[0].sshd.address))
    return seconds


def _busy_seconds() -> float:
    """CPU seconds spent by the whole machine (every core, not idle nor iowait) since boot."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _sshd_seconds(hosts: list[Any]) -> float:
    """CPU seconds of the hosts' sshd and of every session process it has reaped."""
    total = 0
    for host in hosts:
        stat = Path(f"/proc/{host.sshd.process.pid}/stat").read_text()
        total += sum(int(f) for f in stat[stat.rindex(")") + 2 :].split()[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_summary(samples: list[tuple[float, float, float]]) -> str:
    here, remote, machine = (statistics.median(s[i] for s in samples) for i in range(3))
    return (
        f"deploy process {here:.1f} s, hosts' sshd sessions {remote:.1f} s, "
        f"whole machine {machine:.1f} s (medians)"
    )


def _step_seconds(out: str, address: str) -> dict[str, float]:
    """``[addr] step: result (1.2 s)`` lines as {step: seconds}."""
    found = {}
    for line in out.splitlines():
        match = re.match(rf"^\[{re.escape(address)}\] ([^:]+): .*\(([0-9.]+) s\)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def _median_steps(samples: list[dict[str, float]]) -> dict[str, float]:
    names = dict.fromkeys(name for sample in samples for name in sample)
    return {n: statistics.median(s.get(n, 0.0) for s in samples) * 1000 for n in names}


def run(runs: int) -> dict[str, object]:
    sys.path[:0] = [str(TESTS), str(TESTS / "e2e")]
    import deploy_fixtures as fx  # noqa: PLC0415 - from tests/e2e
    from support.sshd import ClientKeys, keygen  # noqa: PLC0415

    # An account of its own: a test run at the same time removes the tests' pusher
    # (the pretend hosts share this machine's accounts).
    fx.PUSHER = BENCH_PUSHER

    base = Path(tempfile.mkdtemp(prefix="gitops-deploy-bench-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    os.environ["HOME"] = str(home)  # paramiko reads ~/.ssh/config from $HOME
    keys = ClientKeys(base / "client")
    config = keys.write_ssh_config(home)
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(base / "cache"),
        "GIT_SSH_COMMAND": f"ssh -F {config}",
    }
    keygen(base / "host_key", "bench-host")
    (base / "mail").mkdir(mode=0o755)
    world = fx.World(base, keys, base / "host_key", env, ports=dict)
    fx.remove_pusher()
    fx.make_pusher(base, keys.public.read_text())
    try:
        return {"suite": "deploy", "rows": _rows(world, runs)}
    finally:
        world.close()
        fx.remove_pusher()
        shutil.rmtree(base, ignore_errors=True)


def _rows(world: Any, runs: int) -> list[dict[str, object]]:
    hosts = [world.add_host() for _ in range(3)]
    conf = world.conf_repo(_Workdir(world.base / "conf"), _users(world.base), _Cert(world.base))
    one = hosts[:1]
    build = _time(world, one, conf)  # the wheelhouse is built here, once
    first_one, first_three, again_one, again_three = [], [], [], []
    steps_one: list[dict[str, float]] = []
    steps_three: list[dict[str, float]] = []
    cpu_one: list[tuple[float, float, float]] = []
    cpu_three: list[tuple[float, float, float]] = []
    for _ in range(FIRST_RUNS):
        _fresh(hosts)
        first_one.append(_time(world, one, conf, steps_one, cpu_one))
        _fresh(hosts)
        first_three.append(_time(world, hosts, conf, steps_three, cpu_three))
    for _ in range(runs):
        again_one.append(_time(world, one, conf))
        again_three.append(_time(world, hosts, conf))
    ratio = statistics.median(first_three) / statistics.median(first_one)
    return [
        ms_row("first deploy, 1 host, wheelhouse built first", "-", [build]),
        {
            **ms_row("first deploy, 1 host (wheelhouse cached)", "-", first_one),
            "phases_ms": _median_steps(steps_one),
            "cpu": _cpu_summary(cpu_one),
        },
        {
            **ms_row("first deploy, 3 hosts in parallel", "<= 1.5 x 1 host", first_three),
            "phases_ms": _median_steps(steps_three),
            "cpu": _cpu_summary(cpu_three),
        },
        {
            "what": "3 hosts in parallel / 1 host, first deploy",
            "target": "<= 1.5",
            "summary": f"{ratio:.2f} x",
        },
        ms_row("redeploy, 1 host, no change", "<= 5000 ms", again_one),
        ms_row("redeploy, 3 hosts in parallel, no change", "-", again_three),
    ]
