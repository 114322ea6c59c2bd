"""``gitops-mail deploy [--conf DIR] HOST...``: install or update servers over SSH, in parallel.

Each host runs in its own thread (``host.remote.deploy``); a failing host
ends only itself. This module does what happens on this machine: the
wheelhouse (built once per Python), the conf repo's remote for each host and
``git push`` to it (only when the host lacks the branch's commits), the
``--adopt`` clone, the progress lines and the summary. Exit 0 when every
host is deployed, else 1; the summary names the failed ones.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gitops_mail.core.deploy import report as deployreport
from gitops_mail.core.deploy.layout import Layout
from gitops_mail.core.deploy.plan import Texts, Wheelhouse
from gitops_mail.core.deploy.report import HostReport, Outcome
from gitops_mail.core.deploy.target import Target, assign_hosts, parse_target, remote_names
from gitops_mail.core.deploy.texts import render_settings, render_unit
from gitops_mail.core.manifest.hosts import NO_HOSTS, Hosts
from gitops_mail.errors import GitopsMailError, UsageError
from gitops_mail.git import plumbing as gitplumbing
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.procs import Result as procs_result
from gitops_mail.host.remote import deploy as remotedeploy
from gitops_mail.host.remote import wheelhouse as wheels

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "deploy"


def run(args: argparse.Namespace) -> int:
    targets = [parse_target(spec) for spec in args.hosts]
    conf = Path(args.conf)
    if not args.adopt:
        targets = assign_hosts(targets, _manifest_hosts(conf, Layout().branch))
    if len({t.name for t in targets}) < len(targets):
        raise UsageError("a host is named twice", "name each host once")
    if args.adopt and len(targets) > 1:
        raise UsageError("--adopt imports one host's config: give one host")
    layouts = {t.spec: layout_from(args, t) for t in targets}
    if args.status:
        from gitops_mail.cli import rollout  # noqa: PLC0415 - only for --status

        return rollout.run(args, targets, layouts)
    local = LocalSide(conf, remote_names(targets, args.remote), Layout().branch, adopt=args.adopt)
    keys = tuple(_keys(args.push_key))
    jobs = [
        remotedeploy.HostJob(
            t,
            layouts[t.spec],
            _texts(layouts[t.spec], args.host_settings, t.manifest_host),
            keys,
            args.adopt,
            args.accept_new_host_key,
        )
        for t in targets
    ]
    with (
        tempfile.TemporaryDirectory(prefix="gitops-mail-deploy.") as work,
        ThreadPoolExecutor(len(jobs)) as pool,
    ):
        futures = [pool.submit(_one, job, local, Path(work)) for job in jobs]
        reports = [f.result() for f in futures]
    for line in deployreport.summary_lines(reports, _records(conf, local.branch, reports)):
        print(line)
    return 0 if all(r.ok for r in reports) else 1


def layout_from(args: argparse.Namespace, target: Target) -> Layout:
    """The layout for one host; ``{host}`` in --root and --systemctl becomes its name."""
    root = args.root.replace("{host}", target.remote_suffix)
    if not root.startswith("/"):
        raise UsageError(f"--root {args.root!r} must be an absolute path")
    return Layout(
        root=root,
        repo=args.repo_path,
        pusher=args.pusher,
        systemctl=args.systemctl.replace("{host}", target.remote_suffix),
        apt=args.apt,
        chasquid_service=args.chasquid_service,
    )


def _manifest_hosts(conf: Path, branch: str) -> Hosts:
    """The ``hosts:`` of the conf repo's branch (none when it has no valid manifest:
    the host's pre-receive hook says what is wrong with it)."""
    from gitops_mail.core.manifest.model import MANIFEST_PATH, parse_manifest  # noqa: PLC0415
    from gitops_mail.git import read as gitread  # noqa: PLC0415

    try:
        data = gitread.read_revision(conf, branch).data(MANIFEST_PATH)
    except GitopsMailError:
        return NO_HOSTS
    manifest = parse_manifest(data)[0] if data is not None else None
    return manifest.hosts if manifest is not None else NO_HOSTS


def _texts(layout: Layout, settings_file: str | None, host: str | None = None) -> Texts:
    unit = render_unit((TEMPLATES / "gitops-mail.service").read_text(), layout)
    source = Path(settings_file) if settings_file else TEMPLATES / "gitops-mail.yaml"
    try:
        template = source.read_text()
    except OSError as exc:
        raise UsageError(f"cannot read the host settings {source}: {exc.strerror}") from exc
    settings = render_settings(template, layout, host)
    hostsettings.parse(settings.encode(), Path(layout.at(layout.settings)))  # valid, or says why
    return Texts(unit.encode(), settings.encode())


def _keys(files: list[str]) -> list[str]:
    found = []
    for name in files:
        try:
            text = Path(name).expanduser().read_text()
        except OSError as exc:
            raise UsageError(f"cannot read the push key {name}: {exc.strerror}") from exc
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines or any(" PRIVATE KEY" in line for line in lines):
            raise UsageError(
                f"{name} is not an SSH public key",
                "give the .pub file, e.g. --push-key ~/.ssh/id_ed25519.pub",
            )
        found += [line for line in lines if not line.startswith("#")]
    return found


def _one(job: remotedeploy.HostJob, local: LocalSide, work: Path) -> HostReport:
    host_work = work / job.target.remote_suffix
    host_work.mkdir()
    try:
        report = remotedeploy.deploy_host(job, local, local.progress, host_work)
    except Exception as exc:  # a bug must not hide the other hosts' results
        report = HostReport(job.target.name, error=f"unexpected error: {exc!r}")
    local.flush(job.target.name)
    if not report.ok:
        local.say(f"[{report.name}] FAILED: {report.error}")
    return report


def _records(conf: Path, branch: str, reports: list[HostReport]) -> dict[str, list[str]]:
    """The records of ``dns/<domain>.zone`` as the branch renders them, per domain."""
    if not any(r.ok for r in reports):
        return {}
    from gitops_mail.core.dns.zone import render_zones  # noqa: PLC0415 - only when printed
    from gitops_mail.core.state import load_state  # noqa: PLC0415
    from gitops_mail.git import read as gitread  # noqa: PLC0415

    try:
        zones = render_zones(load_state(gitread.read_revision(conf, branch)))
    except GitopsMailError:
        return {}
    return {
        path.removeprefix("dns/").removesuffix(".zone"): [
            line
            for line in data.decode().splitlines()
            if line.strip() and not line.startswith((";", "$"))
        ]
        for path, data in sorted(zones.items())
    }


class LocalSide:
    """This machine's part for every host: wheels, the conf repo, progress lines."""

    def __init__(self, conf: Path, remotes: dict[str, str], branch: str, *, adopt: bool) -> None:
        self.conf, self.remotes, self.branch, self.adopting = conf, remotes, branch, adopt
        self._wheels: dict[tuple[str, str], Wheelhouse] = {}
        self._wheel_lock, self._git_lock, self._out = (
            threading.Lock(),
            threading.Lock(),
            threading.Lock(),
        )
        self._held: dict[str, list[Outcome]] = {}
        if not adopt:
            gitplumbing.resolve_revision(conf, f"refs/heads/{branch}")  # a conf repo, or says why
        elif conf.exists() and any(conf.iterdir()):
            raise UsageError(
                f"--adopt makes a new conf repo in {conf}, which is not empty",
                "give --conf a new directory",
            )

    def wheels(self, python: str, machine: str) -> Wheelhouse:
        with self._wheel_lock:
            key = (python, machine)
            if key not in self._wheels:
                self._wheels[key] = wheels.wheelhouse(python, machine)
            return self._wheels[key]

    def tip(self) -> str:
        return gitplumbing.resolve_revision(self.conf, f"refs/heads/{self.branch}")

    def adopt(self, bundle: Path) -> None:
        with self._git_lock:
            clone_bundle(bundle, self.conf, self.branch)

    def push(self, job: remotedeploy.HostJob, url: str) -> tuple[str, list[str]]:
        name = self.remotes[job.target.spec]
        with self._git_lock:
            ensure_remote(self.conf, name, url)
        pushed, lines = push_if_behind(self.conf, name, self.branch)
        for line in lines:
            self.say(f"[{job.target.name}] remote: {line}")
        return pushed, lines

    def progress(self, name: str, outcome: Outcome) -> None:
        if outcome.step.startswith(deployreport.GROUPED):
            self._held.setdefault(name, []).append(outcome)
            return
        self.flush(name)
        self.say(deployreport.progress_line(name, outcome))

    def flush(self, name: str) -> None:
        held = self._held.pop(name, [])
        if held:
            for outcome in deployreport.group_wheels(held):
                self.say(deployreport.progress_line(name, outcome))

    def say(self, line: str) -> None:
        with self._out:
            print(line, flush=True)
            sys.stdout.flush()


# --- the conf repo: its remote for each host, and the push ---------------------------------

_NO_PROMPT = {"GIT_TERMINAL_PROMPT": "0"}


def _git(repo: Path, *args: str, check: bool = True) -> procs_result:
    env = dict(_NO_PROMPT)
    if "GIT_SSH_COMMAND" not in os.environ and "GIT_SSH" not in os.environ:
        env["GIT_SSH_COMMAND"] = "ssh -o BatchMode=yes"  # fail, never wait for a prompt
    return gitplumbing.run_git_with(repo, env, *args, check=check)


def ensure_remote(conf: Path, name: str, url: str) -> None:
    """``name`` points at ``url``: added if missing; another URL there is an error."""
    found = _git(conf, "remote", "get-url", name, check=False)
    if found.returncode != 0:
        _git(conf, "remote", "add", name, url)
    elif found.text.strip() != url:
        raise UsageError(
            f"the conf repo's remote {name!r} points at {found.text.strip()}, not {url}",
            "pass --remote with another name, or change it: git remote set-url",
        )


def push_if_behind(conf: Path, name: str, branch: str) -> tuple[str, list[str]]:
    """Push ``branch`` unless the host has it already; ("pushed ...", hook lines) or ("", [])."""
    ref, theirs = f"refs/heads/{branch}", f"refs/remotes/{name}/{branch}"
    fetch = ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", name, f"+{ref}:{theirs}")
    fetched = _git(conf, *fetch, check=False).returncode == 0  # fails: no branch there yet
    mine = gitplumbing.resolve_revision(conf, ref)
    there = ""
    if fetched:  # else a remote-tracking ref left from before would be stale
        there = _git(conf, "rev-parse", "--verify", "--quiet", theirs, check=False).text.strip()
    if (
        there
        and _git(conf, "merge-base", "--is-ancestor", mine, there, check=False).returncode == 0
    ):
        return "", []
    done = _git(conf, "push", "--porcelain", name, f"{ref}:{ref}", check=False)
    lines = [
        line.removeprefix("remote: ").rstrip()
        for line in done.stderr.decode("utf-8", "replace").splitlines()
        if line.startswith("remote: ")
    ]
    if done.returncode != 0:
        said = done.text + ("" if lines else done.stderr.decode("utf-8", "replace"))
        raise _push_error(name, branch, said, bool(there), lines)
    return (f"pushed {there[:7]}..{mine[:7]}" if there else f"pushed {mine[:7]}"), lines


def _push_error(
    name: str, branch: str, porcelain: str, had: bool, lines: list[str]
) -> GitopsMailError:
    if "pre-receive hook declined" in porcelain:
        said = "".join(f"\n    remote: {line}" for line in lines)
        return remotedeploy.DeployError(
            f"the host refused the push of {branch}: its pre-receive hook said{said}",
            "fix them in the conf repo, commit, and deploy again",
        )
    if "[rejected]" in porcelain and had:
        return remotedeploy.DeployError(
            f"{name}'s {branch} has commits the conf repo lacks (the daemon's [skip ci] commits)",
            f"git pull --rebase {name} {branch}, then deploy again",
        )
    return remotedeploy.DeployError(f"git push to {name} failed: {porcelain.strip()[-500:]}")


def clone_bundle(bundle: Path, conf: Path, branch: str) -> None:
    """The adopted config: a new conf repo at ``conf``, cloned from the host's bundle."""
    parent = conf.resolve().parent
    gitplumbing.run_git(parent, "clone", "--quiet", "--branch", branch, str(bundle), str(conf))
    gitplumbing.run_git(conf, "remote", "remove", "origin")
