"""What a host is before a deploy: its system, Python, chasquid, and whether it has mail already.

One script gathers it all in one round trip (``facts_script``), printing
``key=value`` lines that ``parse_facts`` reads. ``interpreter`` picks the
Python the venv is made with and the packages that bring it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from gitops_mail.core.deploy.layout import Layout
from gitops_mail.errors import GitopsMailError

SUPPORTED = {"debian": (12,), "ubuntu": (22, 24)}
MIN_PYTHON = (3, 11)


@dataclass(frozen=True)
class Facts:
    os_id: str = ""
    os_version: str = ""
    arch: str = ""
    python3: str = ""  # "3.11"; "" without a python3
    python311: bool = False  # a python3.11 binary (Ubuntu 22.04's universe package)
    chasquid_version: str = ""  # "" when chasquid is not installed
    chasquid_domains: int = 0  # entries in <chasquid_dir>/domains
    managed: bool = False  # gitops-mail has applied here before (state.json)
    pusher_home: str = ""  # "" when the account does not exist
    login_keys: tuple[str, ...] = ()  # the login user's authorized_keys lines

    @property
    def system(self) -> str:
        return f"{self.os_id} {self.os_version}".strip() or "unknown system"


def facts_script(layout: Layout) -> str:
    q = shlex.quote
    state = q(layout.at(layout.state_dir) + "/state.json")
    domains = q(layout.at(layout.chasquid_dir) + "/domains")
    login_home = 'getent passwd "${SUDO_USER:-$(id -un)}" | cut -d: -f6'
    return "\n".join(
        [
            "export LC_ALL=C",
            '[ -r /etc/os-release ] && . /etc/os-release && echo "os_id=$ID" && '
            'echo "os_version=$VERSION_ID"',
            'echo "arch=$(uname -m)"',
            '[ -x /usr/bin/python3 ] && echo "python3=$(/usr/bin/python3 -c '
            '\'import sys; print("%d.%d" % sys.version_info[:2])\')"',
            "[ -x /usr/bin/python3.11 ] && echo python311=yes",
            "command -v chasquid >/dev/null && "
            'echo "chasquid_version=$(chasquid -version 2>&1 | head -n 1)"',
            f'[ -d {domains} ] && echo "chasquid_domains=$(ls -A {domains} | wc -l)"',
            f"[ -f {state} ] && echo managed=yes",
            f'echo "pusher_home=$(getent passwd {q(layout.pusher)} | cut -d: -f6)"',
            f'h=$({login_home}); [ -r "$h/.ssh/authorized_keys" ] && '
            "sed -n 's/^\\(ssh-\\|ecdsa-\\|sk-\\)/login_key=&/p' \"$h/.ssh/authorized_keys\"",
            "true",
        ]
    )


def parse_facts(output: str) -> Facts:
    values: dict[str, str] = {}
    keys: list[str] = []
    for line in output.splitlines():
        key, eq, value = line.partition("=")
        if not eq:
            continue
        if key == "login_key":
            keys.append(value.strip())
        else:
            values[key] = value.strip()
    return Facts(
        os_id=values.get("os_id", ""),
        os_version=values.get("os_version", ""),
        arch=values.get("arch", ""),
        python3=values.get("python3", ""),
        python311=values.get("python311") == "yes",
        chasquid_version=values.get("chasquid_version", ""),
        chasquid_domains=int(values.get("chasquid_domains", "0") or 0),
        managed=values.get("managed") == "yes",
        pusher_home=values.get("pusher_home", ""),
        login_keys=tuple(keys),
    )


class UnsupportedHost(GitopsMailError):
    """The host is not a system deploy knows how to set up."""


def check_supported(facts: Facts) -> None:
    major = facts.os_version.split(".")[0]
    versions = SUPPORTED.get(facts.os_id)
    if versions is None or not major.isdigit() or int(major) < versions[0]:
        raise UnsupportedHost(
            f"{facts.system} is not a system deploy supports",
            "deploy sets up Debian 12 and Ubuntu 22.04 or later; elsewhere install chasquid, "
            "gitops-mail in a venv, and deploy/gitops-mail.service and .yaml by hand",
        )


# The python3 of each supported release, for a host that has none installed yet.
DISTRO_PYTHON = {"debian": {"12": "3.11"}, "ubuntu": {"22": "3.10", "24": "3.12"}}


def interpreter(facts: Facts) -> tuple[str, str, tuple[str, ...]]:
    """(command, "X.Y", apt packages for it) of the Python the venv is made with.

    The distribution's python3 when it is 3.11 or later; else (Ubuntu 22.04)
    its python3.11 package. Named by absolute path: the login shell's PATH may
    find another Python first (pyenv), one the pusher's hooks cannot run.
    """
    major = facts.os_version.split(".")[0]
    python3 = facts.python3 or DISTRO_PYTHON.get(facts.os_id, {}).get(major, "")
    if _version(python3) >= MIN_PYTHON:
        return "/usr/bin/python3", python3, ("python3", "python3-venv")
    return "/usr/bin/python3.11", "3.11", ("python3.11", "python3.11-venv")


def _version(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()
