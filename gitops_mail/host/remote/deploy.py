"""One host's deploy: log in, learn the host, carry out the steps, adopt, push, ask how it runs.

The steps are data from ``core.deploy.plan``; here they are only carried
out: one probe for all of them, then each step that differs, in order, each
reported as it ends. What happens on this machine (the wheels, the conf repo,
``git push``) is the caller's, through ``Local``.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gitops_mail.core.deploy import facts as hostfacts
from gitops_mail.core.deploy.layout import UNIT, Layout
from gitops_mail.core.deploy.plan import Texts, Wheelhouse, deploy_steps
from gitops_mail.core.deploy.probe import commands, parse_probe, probe_script
from gitops_mail.core.deploy.report import (
    CHANGED,
    FAILED,
    UNCHANGED,
    HostReport,
    Outcome,
    daemon_failure,
)
from gitops_mail.core.deploy.steps import Command, File, Service, Step, differences, kept_note
from gitops_mail.core.deploy.target import Target
from gitops_mail.errors import GitopsMailError
from gitops_mail.host.remote.ssh import RemoteError, Session

q = shlex.quote
Progress = Callable[[str, Outcome], None]


@dataclass(frozen=True)
class HostJob:
    target: Target
    layout: Layout
    texts: Texts
    push_keys: tuple[str, ...] = ()  # () : the keys that let the login user in
    adopt: bool = False
    accept_new: bool = False


class Local(Protocol):
    """What a host's deploy needs done on this machine."""

    def wheels(self, python: str, machine: str) -> Wheelhouse: ...

    def tip(self) -> str: ...

    def adopt(self, bundle: Path) -> None: ...

    def push(self, job: HostJob, url: str) -> tuple[str, list[str]]: ...


class DeployError(GitopsMailError):
    """A host cannot be deployed as asked."""


def deploy_host(job: HostJob, local: Local, progress: Progress, workdir: Path) -> HostReport:
    report = HostReport(job.target.name)
    session: Session | None = None
    try:
        session = Session(job.target, accept_new=job.accept_new)
        _deploy(session, job, local, lambda o: _record(report, progress, o), report, workdir)
    except GitopsMailError as exc:
        report.error, report.hint = exc.message, exc.hint
    finally:
        if session is not None:
            session.close()
    return report


def _record(report: HostReport, progress: Progress, outcome: Outcome) -> None:
    report.outcomes.append(outcome)
    progress(report.name, outcome)


def _deploy(  # noqa: PLR0917 - the parts of one host's deploy, passed down once
    session: Session,
    job: HostJob,
    local: Local,
    say: Callable[[Outcome], None],
    report: HostReport,
    workdir: Path,
) -> None:
    """Learn the host, carry out its steps, adopt, push, and ask how it runs now."""
    facts = hostfacts.parse_facts(session.run(hostfacts.facts_script(job.layout)).stdout)
    hostfacts.check_supported(facts)
    adopt = _adoption(job, facts)
    carry_out(session, _steps(job, facts, local), job.layout, say)
    if adopt:
        started = time.monotonic()
        local.adopt(_import_on_host(session, job.layout, workdir))
        took = time.monotonic() - started
        say(Outcome("adopt", CHANGED, f"imported {job.layout.chasquid_dir}", took))
    _push(session, job, local, say, report)
    _summary(session, job.layout, report)
    failure = daemon_failure(report.push_output)
    if failure is not None:
        report.error = f"the daemon did not make the push live: {failure}"
        report.hint = "see `gitops-mail history` on the host; fix the conf repo and deploy again"


def _steps(job: HostJob, facts: hostfacts.Facts, local: Local) -> list[Step]:
    keys = job.push_keys or facts.login_keys
    if not keys:
        raise DeployError(
            f"no SSH key to let {job.layout.pusher} push with",
            "pass --push-key ~/.ssh/id_ed25519.pub (the key git push uses)",
        )
    _, python, _ = hostfacts.interpreter(facts)
    wheels = local.wheels(python, facts.arch or "x86_64")
    return deploy_steps(job.layout, facts, wheels, job.texts, keys)


def _push(
    session: Session, job: HostJob, local: Local, say: Callable[[Outcome], None], report: HostReport
) -> None:
    """Push the branch unless the host has it (asked over this session: no second login)."""
    started = time.monotonic()
    if not _has(session, job.layout, local.tip()):
        report.pushed, report.push_output = local.push(job, push_url(job.target, job.layout))
    result = CHANGED if report.pushed else UNCHANGED
    say(Outcome("push", result, report.pushed, time.monotonic() - started))


def _adoption(job: HostJob, facts: hostfacts.Facts) -> bool:
    where = job.layout.chasquid_dir
    if facts.managed:
        return False  # gitops-mail applies here already: the repo is the truth
    if facts.chasquid_domains and not job.adopt:
        raise DeployError(
            f"{job.target.spec} has a chasquid config in {where} that gitops-mail does not "
            "manage yet; deploying would replace it",
            "pass --adopt to import it into the conf repo first (nothing is lost)",
        )
    if job.adopt and not facts.chasquid_domains:
        raise DeployError(
            f"--adopt: {job.target.spec} has no chasquid config to adopt in {where}",
            "deploy without --adopt, from a conf repo made with `gitops-mail init`",
        )
    return job.adopt


def carry_out(
    session: Session, steps: list[Step], layout: Layout, say: Callable[[Outcome], None]
) -> None:
    """Probe every step at once, then make each one that differs so, in order.

    Files in a row (the wheels) are copied one by one and installed with one
    command: a round trip per file would cost more than the copies.
    """
    found = parse_probe(session.run(probe_script(steps, layout)).stdout, len(steps))
    changed: set[str] = set()
    files: list[tuple[File, list[str]]] = []
    for step, value in zip(steps, found, strict=True):
        if not isinstance(step, File):
            _install(session, files, layout, say, changed)
        why = _why(step, value, changed)
        if isinstance(step, File) and why:
            files.append((step, why))
            continue
        if not why:
            say(Outcome(step.name, UNCHANGED, kept_note(step, value) or ""))
            continue
        started = time.monotonic()
        with _reported(step.name, started, say):
            _make(session, step, layout, "restart" in why)
        changed.add(step.name)
        say(Outcome(step.name, CHANGED, ", ".join(why), time.monotonic() - started))
    _install(session, files, layout, say, changed)


def _install(
    session: Session,
    files: list[tuple[File, list[str]]],
    layout: Layout,
    say: Callable[[Outcome], None],
    changed: set[str],
) -> None:
    """Copy ``files`` to the staging directory, install them with one command; empties it."""
    if not files:
        return
    started, names = time.monotonic(), ", ".join(f.name for f, _ in files)
    script: list[str] = []
    for step, _ in files:
        stage = f"{session.stage}/{step.content.sha256}"
        data = step.content.data
        source = data if data is not None else Path(step.content.source or "")
        with _reported(names, started, say):
            session.put(source, stage)
        script += commands(step, layout, stage=stage)
    with _reported(names, started, say):
        session.run(" && ".join(script))
    each = (time.monotonic() - started) / len(files)
    for step, why in files:
        changed.add(step.name)
        say(Outcome(step.name, CHANGED, ", ".join(why), each))
    files.clear()


@contextlib.contextmanager
def _reported(name: str, started: float, say: Callable[[Outcome], None]) -> Iterator[None]:
    """Reports a failure inside as the outcome of ``name``, then lets it go on."""
    try:
        yield
    except GitopsMailError as exc:
        say(Outcome(name, FAILED, exc.message, time.monotonic() - started))
        raise


def _why(step: Step, found: str, changed: set[str]) -> list[str]:
    why = differences(step, found)
    if isinstance(step, Service) and set(step.restart_after) & changed and "not running" not in why:
        why.append(f"restart: {', '.join(sorted(set(step.restart_after) & changed))} changed")
    if isinstance(step, Command) and set(step.after) & changed and not why:
        why.append(f"{', '.join(sorted(set(step.after) & changed))} changed")
    return why


def _make(session: Session, step: Step, layout: Layout, restart: bool) -> None:
    session.run(" && ".join(f"{{ {c}; }}" for c in commands(step, layout, restart=restart)))


def _import_on_host(session: Session, layout: Layout, workdir: Path) -> Path:
    """``gitops-mail import`` of the host's chasquid dir, run there; its repo as a bundle here."""
    repo, bundle = f"{session.stage}/adopted", f"{session.stage}/adopted.bundle"
    session.run(
        f"{q(layout.command)} import {q(layout.at(layout.chasquid_dir))} {q(repo)} && "
        f"git -C {q(repo)} bundle create --quiet {q(bundle)} --all && chmod 644 {q(bundle)}"
    )
    local = workdir / "adopted.bundle"
    session.get(bundle, local)
    return local


def _has(session: Session, layout: Layout, tip: str) -> bool:
    """Whether the watched branch on the host has ``tip`` (or commits on top of it)."""
    repo = q(layout.at(layout.repo))
    branch = q(f"refs/heads/{layout.branch}")
    check = f"git -c safe.directory={repo} -C {repo} merge-base --is-ancestor {q(tip)} {branch}"
    return session.run(check, check=False).code == 0


def push_url(target: Target, layout: Layout) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port else ""
    return f"ssh://{layout.pusher}@{host}{port}{layout.at(layout.repo)}"


def _summary(session: Session, layout: Layout, report: HostReport) -> None:
    """chasquid's version, the service's state and the live revision, in one round trip."""
    ctl, command = q(layout.systemctl), q(layout.command)
    script = (
        'echo "version=$(chasquid -version 2>&1 | head -n 1)"; '
        f'echo "active=$({ctl} is-active {UNIT} 2>/dev/null)"; '
        f"{command} --config {q(layout.at(layout.settings))} status --format json 2>&1"
    )
    out = session.run(script, check=False).stdout
    version, _, rest = out.partition("\n")
    active, _, status = rest.partition("\n")
    report.chasquid = version.removeprefix("version=").removeprefix("chasquid ").split(" ")[0]
    report.daemon = active.removeprefix("active=").strip() or "unknown"
    try:
        report.live = json.loads(status).get("live") or ""
    except ValueError:
        report.notes.append(f"`gitops-mail status` on the host said: {status.strip()[-300:]}")


__all__ = ["DeployError", "HostJob", "Local", "RemoteError", "carry_out", "deploy_host", "push_url"]
