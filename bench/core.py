"""Core benchmark: validate and plan at 100 domains x 100 users x 100 aliases.

The scale repo has 10,000 users and 10,000 aliases; its tip changes one
alias. Users carry well-formed scrypt records with random bytes: validation
and planning never run scrypt, so real hashes would only slow the setup.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from bench.harness import GITOPS_MAIL, row
from gitops_mail.core.formats.users.db import Scrypt, User, UserDB, render_users

EXAMPLE = Path(__file__).resolve().parent.parent / "example-conf"
DOMAINS, USERS, ALIASES = 100, 100, 100


def _git(cwd: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@localhost",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@localhost",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _users_file() -> bytes:
    users = tuple(
        User(f"user{i}", Scrypt(14, 8, 1, 32, os.urandom(16), os.urandom(32)), 0)
        for i in range(USERS)
    )
    return render_users(UserDB(users))


def _aliases_file(domain: str, changed: bool = False) -> str:
    lines = ["postmaster: user0"]
    for i in range(ALIASES - 1):
        target = f"user{i % USERS}, someone{i}@remote.example"
        if changed and i == 42:
            target = "user1"
        lines.append(f"alias{i}: {target}")
    return "\n".join(lines) + "\n"


ACME_SH = "acme_sh: /root/.acme.sh/mail.example.com_ecc"


def make_scale_repo(
    root: Path, conf: str = 'hostname: "mail.example.com"\n', cert_source: str = ACME_SH
) -> Path:
    """A repo at the benchmark's scale whose tip changes one alias of d50."""
    repo = root / "scale"
    (repo / "chasquid").mkdir(parents=True)
    (repo / "chasquid" / "chasquid.conf").write_text(conf)
    manifest = [
        "version: 1",
        "certificates:",
        "  - name: mail.example.com",
        f"    {cert_source}",
        "domains:",
    ]
    for d in range(DOMAINS):
        domain = f"d{d}.example.com"
        manifest.append(f"  {domain}: {{}}")
        ddir = repo / "chasquid" / "domains" / domain
        ddir.mkdir(parents=True)
        (ddir / "users").write_bytes(_users_file())
        (ddir / "aliases").write_text(_aliases_file(domain))
    (repo / "gitops-mail.yaml").write_text("\n".join(manifest) + "\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "scale")
    (repo / "chasquid/domains/d50.example.com/aliases").write_text(
        _aliases_file("d50.example.com", changed=True)
    )
    _git(repo, "commit", "-qam", "change one alias")
    return repo


def make_example_repo(root: Path) -> Path:
    repo = root / "example"
    subprocess.run(["cp", "-r", str(EXAMPLE) + "/.", str(repo)], check=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "example")
    return repo


def run(runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        scale = make_scale_repo(Path(tmp))
        example = make_example_repo(Path(tmp))
        rows = [
            row(
                "plan (validate + plan) 10k users/10k aliases, 1 alias",
                "<= 1000 ms, <= 200 MB",
                [GITOPS_MAIL, "plan", "--repo", str(scale)],
                runs,
                ok=(2,),
            ),
            row(
                "validate 10k users/10k aliases",
                "<= 1000 ms, <= 200 MB",
                [GITOPS_MAIL, "validate", "--repo", str(scale)],
                runs,
            ),
            row("gitops-mail --help", "<= 300 ms", [GITOPS_MAIL, "--help"], runs),
            row(
                "validate example-conf",
                "<= 300 ms",
                [GITOPS_MAIL, "validate", "--repo", str(example)],
                runs,
            ),
        ]
    return {"suite": "core", "rows": rows}
