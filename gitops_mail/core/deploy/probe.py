"""Shell text for the host: one probe script for every step, and each step's commands.

The probe prints ``<index>\\t<found>`` per step; ``parse_probe`` reads it back
for ``steps.differences``. Everything runs as root (``sudo -n`` in front when
the login user is not root, added by the SSH side). Every value is quoted
with ``shlex.quote``: paths and names come from the command line.
"""

from __future__ import annotations

import posixpath
import shlex

from gitops_mail.core.deploy.layout import Layout
from gitops_mail.core.deploy.steps import (
    Account,
    Command,
    Directory,
    File,
    Lines,
    Link,
    Packages,
    Service,
    Step,
)

q = shlex.quote


def probe_script(steps: list[Step], layout: Layout) -> str:
    body = [f"printf '%s\\t%s\\n' {i} \"$( {_probe(s, layout)} )\"" for i, s in enumerate(steps)]
    return "\n".join(["export LC_ALL=C", *body]) + "\n"


def parse_probe(output: str, count: int) -> list[str]:
    """The probe's answer for each of ``count`` steps ("" where none came)."""
    found = [""] * count
    for line in output.splitlines():
        index, tab, value = line.partition("\t")
        if tab and index.isdigit() and int(index) < count:
            found[int(index)] = value.strip()
    return found


def _probe(step: Step, layout: Layout) -> str:  # noqa: PLR0911 - one answer per kind of step
    if isinstance(step, Packages):
        each = "dpkg-query -W -f='${Status}' \"$p\" 2>/dev/null | grep -q 'ok installed'"
        names = " ".join(q(p) for p in step.packages)
        return f"for p in {names}; do {each} && echo ok || echo no; done | tr '\\n' ' '"
    if isinstance(step, Account):
        return f"getent passwd {q(step.user)} >/dev/null && echo ok || echo no"
    if isinstance(step, Directory | File):
        return _stat(step.path)
    if isinstance(step, Lines):
        lines = " ".join(q(line) for line in step.lines)
        count = f'grep -qxF -- "$l" {q(step.path)} 2>/dev/null || n=$((n+1))'
        return f"n=0; for l in {lines}; do {count}; done; echo $n"
    if isinstance(step, Link):
        return f"readlink {q(step.path)} || echo missing"
    if isinstance(step, Command):
        return f"( {step.check} ) >/dev/null 2>&1 </dev/null && echo ok || echo no"
    units = " ".join(q(u) for u in step.units)
    ctl = q(layout.systemctl)
    enabled = f"{ctl} is-enabled {units} 2>/dev/null | tr '\\n' ' '"
    active = f"{ctl} is-active {units} 2>/dev/null | tr '\\n' ' '"
    return f'printf "%s|%s" "$({enabled})" "$({active})"'


def _stat(path: str) -> str:
    p = q(path)
    digest = f"$([ -f {p} ] && ! [ -L {p} ] && sha256sum < {p} | cut -d' ' -f1)"
    found = f"printf '%s|%s' \"$(stat -c '%F|%U|%G|%a' {p})\" \"{digest}\""
    return f"if [ -e {p} ] || [ -L {p} ]; then {found}; else echo missing; fi"


def commands(  # noqa: PLR0911 - one answer per kind of step
    step: Step, layout: Layout, *, restart: bool = False, stage: str = ""
) -> list[str]:
    """The root commands that make ``step`` so; ``stage`` is where a File's bytes were put."""
    if isinstance(step, Packages):
        apt, names = q(layout.apt), " ".join(q(p) for p in step.packages)
        return [
            f"export DEBIAN_FRONTEND=noninteractive; {apt} update -qq </dev/null && "
            f"{apt} install -y -qq --no-install-recommends {names} </dev/null"
        ]
    if isinstance(step, Account):
        return [
            f"mkdir -p {q(posixpath.dirname(step.home))} && useradd --system --user-group "
            f"--create-home --home-dir {q(step.home)} --shell {q(step.shell)} "
            f"--password '*' {q(step.user)}"
        ]
    if isinstance(step, Directory):
        return [f"install -d -o {q(step.owner)} -g {q(step.group)} -m {step.mode:o} {q(step.path)}"]
    if isinstance(step, File):
        return [
            f"install -D -o {q(step.owner)} -g {q(step.group)} -m {step.mode:o} "
            f"{q(stage)} {q(step.path)}"
        ]
    if isinstance(step, Lines):
        return [_lines(step)]
    if isinstance(step, Link):
        parent = q(posixpath.dirname(step.path))
        return [f"mkdir -p {parent} && ln -sfn {q(step.target)} {q(step.path)}"]
    if isinstance(step, Command):
        return [step.run]
    return _service(step, layout, restart)


def _lines(step: Lines) -> str:
    p, own = q(step.path), f"{q(step.owner)}:{q(step.group)}"
    parent = q(posixpath.dirname(step.path))
    add = " ".join(q(line) for line in step.lines)
    append = f'grep -qxF -- "$l" {p} || printf \'%s\\n\' "$l" >> {p}'
    return (
        f"install -d -o {q(step.owner)} -g {q(step.group)} -m 700 {parent} && touch {p} && "
        f"for l in {add}; do {append}; done && chown {own} {p} && chmod {step.mode:o} {p}"
    )


def _service(step: Service, layout: Layout, restart: bool) -> list[str]:
    ctl, units = q(layout.systemctl), " ".join(q(u) for u in step.units)
    out = [f"{ctl} enable {units}"]
    if step.start:
        out.append(f"{ctl} {'restart' if restart else 'start'} {units}")
    return out
