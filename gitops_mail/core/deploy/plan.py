"""The steps of one host's deploy, in order, from its layout, its facts and what is uploaded.

1. packages: chasquid, git, python3-dkim (the DKIM hook of chasquid < 1.14), the venv's Python;
2. the pusher's account, its ``authorized_keys``, the watched bare repo;
3. the wheelhouse uploaded to ``<home>/wheels``, the venv made from it
   (no index: the host needs nothing but its apt mirror), the link
   ``/usr/local/bin/gitops-mail`` that the unit's ExecStart names;
4. the host settings (written only where missing: the host's policy is root's),
   the push hooks, the unit;
5. chasquid's socket units enabled and started; gitops-mail.service enabled
   and started, restarted when the venv, the settings or the unit changed.

The conf repo is pushed after these, by the command line.
"""

from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass

from gitops_mail.core.deploy.facts import Facts, interpreter
from gitops_mail.core.deploy.layout import CHASQUID_SOCKETS, UNIT, Layout
from gitops_mail.core.deploy.steps import (
    Account,
    Command,
    Content,
    Directory,
    File,
    Lines,
    Link,
    Packages,
    Service,
    Step,
)

q = shlex.quote
GIT_SHELL = "/usr/bin/git-shell"  # the pusher can push and fetch, and nothing else
VENV, SETTINGS, UNIT_STEP = "venv", "host settings", "unit"


@dataclass(frozen=True)
class Wheelhouse:
    """The wheels to upload: gitops-mail's own and its dependencies', for one Python."""

    files: tuple[tuple[str, Content], ...]  # (file name, content)
    project: str  # the file name of gitops-mail's wheel
    digest: str  # of every file name and digest: the venv's stamp
    pip: str = ""  # the file name of pip's wheel: pip runs from it (the venv has no pip)
    site: str = ""  # the venv's site-packages installed here (then ``files`` is it alone)
    script: str = ""  # with ``site``: the venv's bin/gitops-mail, ``{python}`` for its path


@dataclass(frozen=True)
class Texts:
    unit: bytes  # deploy/gitops-mail.service with this layout's paths
    settings: bytes  # deploy/gitops-mail.yaml with this layout's paths


def deploy_steps(
    layout: Layout, facts: Facts, wheels: Wheelhouse, texts: Texts, keys: tuple[str, ...]
) -> list[Step]:
    return [
        *_packages(facts),
        *_pusher(layout, facts, keys),
        Directory("chasquid dir", layout.at(layout.chasquid_dir)),  # the package's; a --root's
        *_venv(layout, facts, wheels),
        File(SETTINGS, layout.at(layout.settings), Content.of(texts.settings), keep_existing=True),
        _hooks(layout),
        File(UNIT_STEP, layout.unit_path, Content.of(texts.unit)),
        Command("systemd reload", f"{q(layout.systemctl)} daemon-reload", "true", (UNIT_STEP,)),
        Service("chasquid sockets", CHASQUID_SOCKETS),
        Service("gitops-mail service", (UNIT,), restart_after=(VENV, SETTINGS, UNIT_STEP)),
    ]


def _packages(facts: Facts) -> list[Step]:
    _, _, python = interpreter(facts)
    # python3-dkim: gitops-mail's DKIM signing hook for chasquid < 1.14 runs on the system Python
    return [Packages("packages", ("chasquid", "git", "python3-dkim", *python))]


def _pusher(layout: Layout, facts: Facts, keys: tuple[str, ...]) -> list[Step]:
    user, home = layout.pusher, layout.pusher_home(facts.pusher_home or None)
    repo = layout.at(layout.repo)
    init = (
        f"install -d -o {q(user)} -g {q(user)} -m 755 {q(repo)} && cd / && "
        f"runuser -u {q(user)} -- git init --quiet --bare --initial-branch={q(layout.branch)} "
        f"{q(repo)}"
    )
    owned = f'test -f {q(repo + "/HEAD")} && [ "$(stat -c %U {q(repo)})" = {q(user)} ]'
    return [
        Account("pusher", user, home, GIT_SHELL),
        Lines("push keys", posixpath.join(home, ".ssh", "authorized_keys"), keys, user, user),
        Command("repo", init, owned),
    ]


def _venv(layout: Layout, facts: Facts, wheels: Wheelhouse) -> list[Step]:
    python, version, _ = interpreter(facts)
    steps: list[Step] = [Directory("wheels dir", layout.wheels)]
    steps += [
        File(f"wheel {name}", posixpath.join(layout.wheels, name), content)
        for name, content in wheels.files
    ]
    venv, stamp = q(layout.venv), q(layout.venv + "/.wheelhouse")
    pip_wheel = posixpath.join(layout.wheels, wheels.pip, "pip")  # pip runs from its wheel
    pip = f"{venv}/bin/python {q(pip_wheel)} install --isolated --quiet --no-index"
    project = q(posixpath.join(layout.wheels, wheels.project))
    install = (  # a new venv gets all in one pip run; an existing one, the project again too
        f"if [ -x {venv}/bin/python ]; then new=0; else new=1; "
        f"{q(python)} -m venv --without-pip {venv} || exit 1; fi && "
        f"{pip} --find-links {q(layout.wheels)} gitops-mail && "
        f'{{ [ "$new" = 1 ] || {pip} --no-deps --force-reinstall {project}; }} && '
        f"echo {q(wheels.digest)} > {stamp}"
    )
    if wheels.site:
        install = _unpack(layout, python, version, wheels)
    check = f'[ "$(cat {stamp} 2>/dev/null)" = {q(wheels.digest)} ]'
    return [
        *steps,
        Command(VENV, install, check),
        Link("link", layout.at(layout.link), layout.command),
    ]


def _unpack(layout: Layout, python: str, version: str, wheels: Wheelhouse) -> str:
    """The venv from the site-packages installed on this machine: made (or kept), its
    site-packages replaced by the archive's, its console script written."""
    venv, site = layout.venv, layout.venv + f"/lib/python{'.'.join(version.split('.')[:2])}"
    new, old = q(site + "/site-packages.new"), q(site + "/site-packages.old")
    archive = q(posixpath.join(layout.wheels, wheels.site))
    command = q(posixpath.join(venv, "bin", "gitops-mail"))
    script = wheels.script.replace("{python}", posixpath.join(venv, "bin", "python"))
    return (
        f"{{ [ -x {q(venv)}/bin/python ] || {q(python)} -m venv --without-pip {q(venv)}; }} && "
        f"rm -rf {new} {old} && mkdir {new} && tar -xzf {archive} -C {new} && "
        f"mv {q(site + '/site-packages')} {old} && mv {new} {q(site + '/site-packages')} && "
        f"rm -rf {old} && printf %s {q(script)} > {command}.new && chmod 755 {command}.new && "
        f"mv {command}.new {command} && echo {q(wheels.digest)} > {q(venv + '/.wheelhouse')}"
    )


def _hooks(layout: Layout) -> Command:
    repo, settings = layout.at(layout.repo), layout.at(layout.settings)
    run = f"{q(layout.command)} hooks install {q(repo)} --config {q(settings)}"
    wanted = [  # the venv's python (python or python3) runs the hook with these settings
        f"grep -qF -- {q(text)} {q(f'{repo}/hooks/{h}')}"
        for h in ("pre-receive", "post-receive")
        for text in (
            f"{layout.venv}/bin/python",
            f"-m gitops_mail.cli.hooks {h} --config {settings}",
        )
    ]
    return Command("push hooks", run, " && ".join(wanted))
