"""Where a deploy puts things on a host, and which commands it runs there.

Every path is given as on a real host (``/opt/gitops-mail``) and placed
under ``root``, so a test deploys into a temporary directory and a real
deploy uses ``/``. The commands (``systemctl``, ``apt-get``) are settings
too: a test points ``systemctl`` at a script that logs its arguments.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

CHASQUID_SOCKETS = (
    "chasquid-smtp.socket",
    "chasquid-submission.socket",
    "chasquid-submission_tls.socket",
)
UNIT = "gitops-mail.service"


@dataclass(frozen=True)
class Layout:
    root: str = "/"
    home: str = "/opt/gitops-mail"  # the venv and its wheelhouse
    link: str = "/usr/local/bin/gitops-mail"  # what the unit's ExecStart runs
    settings: str = "/etc/gitops-mail/gitops-mail.yaml"
    repo: str = "/srv/mail-conf.git"
    state_dir: str = "/var/lib/gitops-mail"
    chasquid_dir: str = "/etc/chasquid"
    unit_dir: str = "/etc/systemd/system"
    homes: str = "/home"  # where the pusher's home is made, if the account is new
    pusher: str = "git"  # owns the watched repo; pushes over SSH
    branch: str = "main"
    systemctl: str = "systemctl"
    apt: str = "apt-get"
    chasquid_service: str = "systemd"  # the host settings' chasquid.service

    def at(self, path: str) -> str:
        """``path`` on the host: below ``root``."""
        if self.root == "/":
            return path
        return posixpath.join(self.root, path.lstrip("/"))

    @property
    def venv(self) -> str:
        return self.at(posixpath.join(self.home, "venv"))

    @property
    def wheels(self) -> str:
        return self.at(posixpath.join(self.home, "wheels"))

    @property
    def command(self) -> str:
        """The console script in the venv; the link points at it."""
        return posixpath.join(self.venv, "bin", "gitops-mail")

    @property
    def python(self) -> str:
        return posixpath.join(self.venv, "bin", "python")

    @property
    def unit_path(self) -> str:
        return self.at(posixpath.join(self.unit_dir, UNIT))

    def pusher_home(self, existing: str | None) -> str:
        return existing or self.at(posixpath.join(self.homes, self.pusher))
