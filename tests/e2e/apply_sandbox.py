"""``Sandbox``: one host for the apply tests (conf repo, host settings, command line, supervisor).

``apply_fixtures.make_sandbox`` builds it; its mail side is ``apply_host.MailClient``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apply_host import (
    ALIASES_PATH,
    BASE_ALIASES,
    CONF_PATH,
    DOMAIN,
    GITOPS_MAIL,
    HOSTNAME,
    MANIFEST_PATH,
    USERS_PATH,
    MailClient,
    Ports,
    Result,
    poll,
)
from support.livetree import TreeState, tree_state

from gitops_mail.cli import main as cli
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.supervisor import Supervisor

RESTART_SCRIPT = """#!/bin/sh
# restart_command for `service: command`: says it started (gate/entered), waits
# until gate/open exists, then has the supervisor start a new chasquid.
set -eu
touch "{gate}/entered"
while [ ! -e "{gate}/open" ]; do sleep 0.01; done
old=$(cat "{state}/chasquid.pid")
echo "$old" >"{state}/chasquid.restart"
kill "$old" 2>/dev/null || true  # it may have exited already (and wait to be started again)
while [ "$(cat "{state}/chasquid.pid")" = "$old" ]; do sleep 0.01; done
"""


@dataclass(frozen=True)
class UsersFiles:
    ana: bytes  # ana@example.test
    ana_bob: bytes  # and bob@example.test


@dataclass
class Sandbox(MailClient):
    root: Path
    config_dir: Path
    state_dir: Path
    host_file: Path
    origin: Any  # tests/conftest.py's Origin
    workdir: Any  # tests/conftest.py's Workdir (commit, push)
    ports: Ports
    ca_file: Path
    fullchain: Path
    privkey: Path
    users: UsersFiles
    issue_cert: Callable[..., Any]  # the tls_cert fixture
    chasquid_args: tuple[str, ...] = ()
    supervisor: Supervisor | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _children: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _thread: threading.Thread | None = None

    # --- the conf repo ---

    def conf(self, **fields: str) -> str:
        """chasquid.conf of this sandbox; keyword arguments replace or add fields."""
        values = {
            "hostname": HOSTNAME,
            "smtp_address": f"127.0.0.1:{self.ports.smtp}",
            "submission_address": f"127.0.0.1:{self.ports.submission}",
            "submission_over_tls_address": f"127.0.0.1:{self.ports.submission_tls}",
            "monitoring_address": f"127.0.0.1:{self.ports.monitoring}",
            "data_dir": str(self.root / "data"),
            "mail_log_path": str(self.root / "mail.log"),
            "mail_delivery_agent_bin": str(self.root / "mda.sh"),
            "mail_delivery_agent_args": "%to%",
            **fields,
        }
        return "".join(f'{name}: "{value}"\n' for name, value in values.items())

    def manifest(
        self, *, version: str = "1.11", fullchain: Path | None = None, key: Path | None = None
    ) -> str:
        return (
            "version: 1\n"
            "chasquid:\n"
            f'  version: "{version}"\n'
            "certificates:\n"
            f"  - name: {HOSTNAME}\n"
            f"    files: {{fullchain: {fullchain or self.fullchain}, key: {key or self.privkey}}}\n"
            "domains:\n"
            f"  {DOMAIN}: {{}}\n"
        )

    def base_files(self) -> dict[str, bytes | str | None]:
        return {
            MANIFEST_PATH: self.manifest(),
            CONF_PATH: self.conf(),
            USERS_PATH: self.users.ana,
            ALIASES_PATH: BASE_ALIASES,
        }

    def tip(self) -> str:
        """The revision main points at."""
        return str(self.workdir.git("rev-parse", "HEAD")).strip()

    def commit(self, files: Mapping[str, bytes | str | None], message: str = "change") -> str:
        """Commit ``files`` (None deletes) in the clone and push to main; the new revision."""
        revision: str = self.workdir.commit(files, message)
        self.workdir.push()
        return revision

    def new_cert(self, name: str) -> tuple[Path, Path]:
        """A new leaf for mail.example.test in ``root/certs/<name>/``: (fullchain, key)."""
        cert = self.issue_cert(HOSTNAME)
        self.ca_file = cert.ca_file  # one CA for the session
        where = self.root / "certs" / name
        where.mkdir(parents=True)
        shutil.copy(cert.fullchain, where / "fullchain.pem")
        shutil.copy(cert.privkey, where / "privkey.pem")
        return where / "fullchain.pem", where / "privkey.pem"

    # --- host settings ---

    def write_host(
        self,
        *,
        service: str = "supervise",
        restart_command: Sequence[str] | None = None,
        reload_strategy: str | None = None,
        probe_deadline: float | None = None,
        state_dir: Path | None = None,
        commit_back: bool = False,
        policy: Mapping[str, object] | None = None,
    ) -> None:
        """(Re)write the host settings; chasquid.args stay those the sandbox was made with.

        The daemon's commit-back is off unless asked for: it moves the branch tip.
        The host's policy allows exactly what the sandbox uses (``host_policy``);
        ``policy`` replaces or adds keys of it.
        """
        lines = [
            f"repo: {self.origin.path}",
            "branch: main",
            f"state_dir: {state_dir or self.state_dir}",
            f"commit_back: {'true' if commit_back else 'false'}",
        ]
        if probe_deadline is not None:
            lines.append(f"probe_deadline: {probe_deadline}")
        lines += ["chasquid:", f"  config_dir: {self.config_dir}", f"  service: {service}"]
        if restart_command is not None:
            lines.append(f"  restart_command: {json.dumps(list(restart_command))}")
        if reload_strategy is not None:
            lines.append(f"  reload_strategy: {reload_strategy}")
        if self.chasquid_args:
            lines.append(f"  args: {json.dumps(list(self.chasquid_args))}")
        lines.append("policy:")
        lines += [
            f"  {k}: {json.dumps(v)}" for k, v in {**self.host_policy(), **(policy or {})}.items()
        ]
        self.host_file.write_text("\n".join(lines) + "\n")

    def host_policy(self) -> dict[str, object]:
        """What this sandbox makes the host do: its delivery agent, its certificates
        (``root/certs``), its data_dir and mail log; the probes stay on loopback."""
        return {
            "delivery_agents": [str(self.root / "mda.sh")],
            "certificate_dirs": [str(self.root / "certs")],
            "chasquid_write_dirs": [str(self.root / "data"), str(self.root / "mail.log")],
        }

    def gated_restart(self) -> Path:
        """Host settings in ``service: command`` mode whose restart waits at a gate.

        The restart command creates ``gate/entered`` when it starts and goes on
        (a real restart through the supervisor) once ``gate/open`` exists.
        Returns the gate directory.
        """
        gate = self.root / "gate"
        gate.mkdir(exist_ok=True)
        script = self.root / "restart-chasquid"
        script.write_text(RESTART_SCRIPT.format(gate=gate, state=self.state_dir))
        script.chmod(0o755)
        self.write_host(service="command", restart_command=[str(script)])
        return gate

    # --- the command line ---

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, hostsettings.ENV_VAR: str(self.host_file), **extra}

    def gm(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60) -> Result:
        """Run ``gitops-mail ARGS`` with this host's settings; its exit code and output."""
        done = subprocess.run(
            [*GITOPS_MAIL, *args],
            env=self.env(**(env or {})),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def run(self, *args: str) -> Result:
        """``gitops-mail ARGS`` in this process: the same code, without a start-up per call."""
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["--config", str(self.host_file), *args])
        return Result(code, out.getvalue(), err.getvalue())

    def start_gm(
        self, name: str, *args: str, session: bool = False
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``gitops-mail ARGS`` in the background (in a new session if ``session``);
        its standard output and error go to ``root/<name>.out``."""
        out = self.root / f"{name}.out"
        with out.open("wb") as handle:
            child = subprocess.Popen(
                [*GITOPS_MAIL, *args],
                env=self.env(),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=session,
            )
        self._children.append(child)
        return child, out

    def apply_ok(self, *args: str) -> Result:
        done = self.run("apply", *args)
        assert done.code == 0, f"apply failed:\n{done.out}{done.err}"
        return done

    def history(self) -> list[dict[str, Any]]:
        done = self.run("history", "--format", "json")
        assert done.code == 0, done.err
        history: list[dict[str, Any]] = json.loads(done.out)
        return history

    def status(self) -> dict[str, Any]:
        """``status --format json``; its exit code agrees with it: 3 when the tip failed
        (and is not tried again), 1 when chasquid does not run, else 0."""
        done = self.run("status", "--format", "json")
        status: dict[str, Any] = json.loads(done.out)
        code = 1 if not status["chasquid_running"] else 3 if status["tip_failed"] else 0
        assert done.code == code, done.err
        return status

    # --- the live server ---

    def tree(self) -> TreeState:
        return tree_state(self.config_dir)

    def assert_untouched(self, before: TreeState, result: str, reason: str) -> None:
        """After a failed apply: the live tree as ``before``, chasquid serves, history says why."""
        assert self.tree() == before
        last = self.history()[0]
        assert (last["result"], last["reason"]) == (result, reason)
        self.mail_works()

    def pid(self) -> int | None:
        """The supervisor's current chasquid child, if one runs."""
        return self.supervisor.pid if self.supervisor is not None else None

    # --- the supervisor ---

    def start_supervisor(self) -> None:
        """Run the supervisor of the current host settings (service: supervise) in a thread."""
        self.supervisor = Supervisor(hostsettings.load(str(self.host_file)))
        self._thread = threading.Thread(
            target=self.supervisor.run_forever, args=(self._stop,), name="supervisor"
        )
        self._thread.start()
        poll((self.state_dir / "chasquid.pid").exists, 10, "the supervisor's child")

    def close(self) -> None:
        """Open every gate, end what the test started and left running, stop the supervisor."""
        gate = self.root / "gate"
        if gate.is_dir():
            (gate / "open").touch()
        for child in self._children:
            if child.poll() is None:
                child.kill()
            child.wait(timeout=30)
        self.stop_supervisor()

    def stop_supervisor(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            assert not self._thread.is_alive(), "the supervisor did not stop"
