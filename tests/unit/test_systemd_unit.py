"""deploy/gitops-mail.service agrees with the code and the sample host settings.

A text test: no systemd needed. The unit's writable paths are exactly those
the daemon writes (with the work dir inside the config dir), its capabilities
exactly those the code uses, and its memory bound leaves room for the largest
revision the limits allow.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from gitops_mail.core.policy import Limits
from gitops_mail.host import settings as hostsettings
from gitops_mail.host.livefs.configdir import LiveDir

DEPLOY = Path(__file__).parents[2] / "deploy"
MIB = 1 << 20


def service() -> dict[str, list[str]]:
    """The ``[Service]`` directives, each with every value it is given, in order."""
    found: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in (DEPLOY / "gitops-mail.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            found[key].append(value)
    return dict(found)


def host() -> hostsettings.HostSettings:
    path = DEPLOY / "gitops-mail.yaml"
    return hostsettings.parse(path.read_bytes(), path)


def size(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]?)", text).groups()  # type: ignore[union-attr]
    return int(number) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


def test_the_capabilities_are_exactly_those_the_code_uses() -> None:
    [bounding] = service()["CapabilityBoundingSet"]
    assert set(bounding.split()) == {
        "CAP_CHOWN",  # livefs: owners of files and directories
        "CAP_FOWNER",  # livefs: modes of directories other users own
        "CAP_DAC_OVERRIDE",  # livefs: directories other users own; the pusher's repo
        "CAP_SETUID",  # host.procs.Identity: git as the repo owner, chasquid as chasquid
        "CAP_SETGID",
        "CAP_KILL",  # stopping a chasquid that runs as another user
    }
    assert "AmbientCapabilities" not in service()


def test_system_calls_namespaces_and_bounds_are_limited() -> None:
    unit = service()
    assert unit["SystemCallFilter"] == ["@system-service"]
    assert unit["SystemCallErrorNumber"] == ["EPERM"]
    assert unit["RestrictNamespaces"] == ["yes"]
    assert unit["NoNewPrivileges"] == ["yes"]
    [high], [most] = unit["MemoryHigh"], unit["MemoryMax"]
    # ~8 bytes of memory per byte of revision, plus Python and a pre-flight chasquid.
    assert size(high) >= 8 * Limits().revision_bytes + 75 * MIB
    assert size(most) > size(high)
    assert 64 <= int(unit["TasksMax"][0]) <= 1024


def test_only_the_config_dir_the_repo_and_the_state_dir_are_writable() -> None:
    unit, settings = service(), host()
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == [str(settings.chasquid.config_dir), str(settings.repo)]
    assert unit["StateDirectory"] == [settings.state_dir.relative_to("/var/lib").as_posix()]


def test_every_path_a_swap_renames_between_is_inside_one_writable_path() -> None:
    settings = host()
    live = LiveDir(settings.chasquid.config_dir, settings.state_dir)
    writable = Path(service()["ReadWritePaths"][0])
    for path in (live.config_dir, live.work_dir, live.staging_dir, live.journal_path):
        assert path.is_relative_to(writable), path
    assert live.work_dir == writable / ".gitops-mail"


def test_git_trusts_the_repo_the_unit_lets_it_write() -> None:
    [environment] = [e for e in service()["Environment"] if "safe.directory" in e]
    assert f"GIT_CONFIG_VALUE_0={host().repo}" in environment.split()
