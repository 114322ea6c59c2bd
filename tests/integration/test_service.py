"""Restarting chasquid in systemd and command modes; supervise mode without a supervisor.

systemd cannot run here, so a fake ``systemctl`` script first on PATH stands in
for it (the one stand-in these tests allow): it records its arguments and
answers as the test tells it. Everything else is real: restart commands are
real scripts, processes are read from the real /proc.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest

from gitops_mail.cli import supervise
from gitops_mail.errors import GitopsMailError, InvalidConfig, UsageError
from gitops_mail.host.service import (
    CommandService,
    ServiceError,
    SuperviseService,
    SystemdService,
    config_dir_flag,
    is_chasquid,
    service_for,
)
from gitops_mail.host.settings import ChasquidSettings, HostSettings

FAKE_SYSTEMCTL = """#!/bin/sh
# Stands in for systemctl: records its arguments, answers as told by files beside it.
here=$(dirname "$0")
echo "$*" >>"$here/calls"
case "$1" in
restart)
    if [ -f "$here/restart-fails" ]; then
        echo "Job for $2 failed because the control process exited with error code." >&2
        echo "See \\"systemctl status $2\\" and \\"journalctl -xeu $2\\" for details." >&2
        exit 1
    fi ;;
is-active)
    exit "$(cat "$here/is-active" 2>/dev/null || echo 0)" ;;
esac
exit 0
"""


def settings(tmp_path: Path, **chasquid: Any) -> HostSettings:
    return HostSettings(
        path=tmp_path / "gitops-mail.yaml",
        repo=tmp_path / "repo.git",
        state_dir=tmp_path / "state",
        chasquid=ChasquidSettings(config_dir=tmp_path / "config", **chasquid),
    )


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@pytest.fixture
def systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake systemctl's directory, first on PATH; ``calls`` lists its invocations."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir / "systemctl", FAKE_SYSTEMCTL)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir


def calls(systemctl: Path) -> list[str]:
    path = systemctl / "calls"
    return path.read_text().splitlines() if path.exists() else []


# --- choosing a service -------------------------------------------------------------


def test_service_for_each_mode(tmp_path: Path) -> None:
    systemd = service_for(settings(tmp_path, unit="mail.service"))
    assert systemd == SystemdService("mail.service")
    assert systemd.describe() == "systemd unit mail.service"

    command = service_for(settings(tmp_path, service="command", restart_command=("sv", "restart")))
    assert isinstance(command, CommandService)
    assert command.describe() == "restart command 'sv restart'"

    supervised = service_for(settings(tmp_path, service="supervise"))
    assert isinstance(supervised, SuperviseService)
    assert supervised.describe() == f"gitops-mail supervisor (state dir {tmp_path / 'state'})"


def test_command_mode_needs_a_restart_command(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig) as missing:
        service_for(settings(tmp_path, service="command"))
    assert missing.value.message == (
        f"{tmp_path / 'gitops-mail.yaml'}: chasquid.service is 'command' but "
        "chasquid.restart_command is not set"
    )
    assert missing.value.hint == (
        "set chasquid.restart_command to the command that restarts chasquid, "
        'as a list: ["sv", "restart", "chasquid"]'
    )


# --- systemd --------------------------------------------------------------------------


def test_systemd_restart_runs_systemctl_restart_then_checks_it_is_active(
    tmp_path: Path, systemctl: Path
) -> None:
    service_for(settings(tmp_path)).restart()
    assert calls(systemctl) == ["restart chasquid.service", "is-active --quiet chasquid.service"]


def test_systemd_is_running_follows_is_active(tmp_path: Path, systemctl: Path) -> None:
    service = service_for(settings(tmp_path, unit="mail.service"))
    assert service.is_running()
    (systemctl / "is-active").write_text("3\n")
    assert not service.is_running()
    assert calls(systemctl) == ["is-active --quiet mail.service"] * 2


def test_systemd_restart_failure_carries_systemctl_words(tmp_path: Path, systemctl: Path) -> None:
    (systemctl / "restart-fails").touch()
    with pytest.raises(ServiceError) as failed:
        service_for(settings(tmp_path)).restart()
    assert failed.value.message == (
        "restarting chasquid failed: command 'systemctl restart chasquid.service' exited 1: "
        "Job for chasquid.service failed because the control process exited with error code.\n"
        'See "systemctl status chasquid.service" and "journalctl -xeu chasquid.service" '
        "for details."
    )
    assert failed.value.hint == (
        "see `systemctl status chasquid.service` and `journalctl -u chasquid.service`"
    )
    assert calls(systemctl) == ["restart chasquid.service"]


def test_systemd_unit_not_active_after_restart(tmp_path: Path, systemctl: Path) -> None:
    (systemctl / "is-active").write_text("3\n")
    with pytest.raises(ServiceError) as failed:
        service_for(settings(tmp_path)).restart()
    assert failed.value.message == "chasquid.service is not active after its restart"
    assert failed.value.hint == (
        "see `systemctl status chasquid.service` and `journalctl -u chasquid.service`"
    )


def test_systemd_without_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ServiceError) as failed:
        service_for(settings(tmp_path)).restart()
    assert failed.value.message == (
        "cannot run systemctl: command 'systemctl restart chasquid.service' exited 127: "
        "[Errno 2] No such file or directory: 'systemctl'"
    )
    assert failed.value.hint == (
        "chasquid.service is 'systemd' in the host settings; on a host without systemd "
        "use 'supervise' or 'command'"
    )


# --- a restart command ----------------------------------------------------------------


def test_command_restart_runs_the_argv(tmp_path: Path) -> None:
    done = tmp_path / "restarted"
    restart = script(tmp_path / "restart", f'#!/bin/sh\nprintf "%s|" "$@" >"{done}"\n')
    argv = (str(restart), "chasquid", "two words")
    service_for(settings(tmp_path, service="command", restart_command=argv)).restart()
    assert done.read_text() == "chasquid|two words|"


def test_command_restart_failure_carries_its_output(tmp_path: Path) -> None:
    restart = script(
        tmp_path / "restart", "#!/bin/sh\necho 'chasquid: unable to restart' >&2\nexit 3\n"
    )
    service = service_for(settings(tmp_path, service="command", restart_command=(str(restart),)))
    with pytest.raises(ServiceError) as failed:
        service.restart()
    assert failed.value.message == (
        f"restarting chasquid failed: command '{restart}' exited 3: chasquid: unable to restart"
    )
    assert failed.value.hint == (
        "run the command by hand to see why; it is chasquid.restart_command in the host settings"
    )


def test_command_restart_that_hangs_times_out(tmp_path: Path) -> None:
    restart = script(tmp_path / "restart", "#!/bin/sh\nexec sleep 30\n")
    service = CommandService((str(restart),), ChasquidSettings(), timeout=0.2)
    with pytest.raises(ServiceError) as failed:
        service.restart()
    assert failed.value.message == f"restarting chasquid failed: command '{restart}' timed out"


def test_command_mode_is_running_looks_for_chasquid_on_the_config_dir(tmp_path: Path) -> None:
    service = service_for(settings(tmp_path, service="command", restart_command=("true",)))
    assert not service.is_running()  # no chasquid runs on tmp_path/config
    assert not is_chasquid(os.getpid(), ChasquidSettings())  # python is not chasquid
    assert not is_chasquid(2**22 + 1, ChasquidSettings())  # beyond pid_max: no such process


@pytest.mark.parametrize(
    ("argv", "config_dir"),
    [
        (["chasquid", "-config_dir=/srv/a"], "/srv/a"),
        (["chasquid", "--config_dir=/srv/a", "-v=1"], "/srv/a"),
        (["chasquid", "-v=1", "-config_dir", "/srv/a"], "/srv/a"),
        (["chasquid", "--config_dir", "/srv/a"], "/srv/a"),
        (["chasquid"], "/etc/chasquid"),
        (["chasquid", "-config_dir"], "/etc/chasquid"),
        (["chasquid", "extra", "-config_dir=/srv/a"], "/etc/chasquid"),  # flags ended
        (["chasquid", "--", "-config_dir=/srv/a"], "/etc/chasquid"),
        (["chasquid", "-config_directory=/srv/a"], "/etc/chasquid"),
    ],
)
def test_config_dir_flag_as_go_reads_it(argv: list[str], config_dir: str) -> None:
    assert config_dir_flag([a.encode() for a in argv]) == config_dir


# --- supervise, with no supervisor ------------------------------------------------------


def test_supervise_restart_without_a_supervisor(tmp_path: Path) -> None:
    host = settings(tmp_path, service="supervise")
    service = service_for(host)
    for state in ("no state dir", "a stale pid file and lock"):
        with pytest.raises(ServiceError) as missing:
            service.restart()
        assert missing.value.message == (
            f"no gitops-mail supervisor is running for state dir {host.state_dir}, "
            "so chasquid cannot be restarted"
        ), state
        assert missing.value.hint == (f"start it: `gitops-mail supervise --config {host.path}`")
        assert not service.is_running()
        host.state_dir.mkdir(exist_ok=True)
        (host.state_dir / "chasquid.pid").write_text(f"{os.getpid()}\n")
        (host.state_dir / "supervisor.lock").write_text(f"{os.getpid()}\n")
    assert not (host.state_dir / "chasquid.restart").exists()


def test_supervise_command_refuses_other_modes(tmp_path: Path) -> None:
    path = tmp_path / "gitops-mail.yaml"
    path.write_text(f"repo: {tmp_path}/repo.git\nchasquid:\n  service: systemd\n")
    with pytest.raises(UsageError) as refused:
        supervise.run(argparse.Namespace(config=str(path)))
    assert refused.value.message == (
        f"{path}: chasquid.service is 'systemd', so chasquid is not ours to run"
    )
    assert refused.value.hint == (
        "set chasquid.service to 'supervise' in the host settings to run chasquid "
        "as a child of `gitops-mail supervise`"
    )
    assert isinstance(refused.value, GitopsMailError)
