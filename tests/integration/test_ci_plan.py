"""deploy/ci/plan.sh, the plan of a pull request for any CI, on real revisions."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAN_SH = ROOT / "deploy" / "ci" / "plan.sh"
WORKFLOW = ROOT / "deploy" / "github-actions" / "gitops-mail-plan.yml"
ALIASES = "chasquid/domains/example.com/aliases"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


@pytest.fixture
def pull_request(tmp_path: Path) -> Path:
    """A conf repo from ``gitops-mail init``, main as origin/main, and a branch on it."""
    repo = tmp_path / "conf"
    subprocess.run(
        [sys.executable, "-m", "gitops_mail", "init", "example.com", str(repo)],
        check=True,
        capture_output=True,
    )
    git(repo, "update-ref", "refs/remotes/origin/main", "refs/heads/main")
    git(repo, "checkout", "--quiet", "-b", "forward-sales")
    return repo


def plan_sh(repo: Path, *args: str, gm: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GITOPS_MAIL": gm or f"{sys.executable} -m gitops_mail",
        "PLAN_OUTPUT": "plan.md",
    }
    return subprocess.run(
        ["sh", str(PLAN_SH), *args], cwd=repo, env=env, capture_output=True, text=True, check=False
    )


def test_a_change_is_a_plan_in_markdown_and_not_a_failure(pull_request: Path) -> None:
    aliases = pull_request / ALIASES
    aliases.write_text(aliases.read_text() + "sales: i\n")
    git(pull_request, "commit", "--quiet", "-am", "Forward sales@")
    tip, base = (
        git(pull_request, "rev-parse", "--short", "HEAD").strip(),
        git(pull_request, "rev-parse", "--short", "origin/main").strip(),
    )

    done = plan_sh(pull_request)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan.sh: changes (the plan is in plan.md)" in done.stdout
    plan = (pull_request / "plan.md").read_text()
    assert plan.startswith(f"### gitops-mail plan: `{base}` → `{tip}`\n")
    assert "| + | alias added | `sales@example.com` |" in plan
    assert plan in done.stdout  # the log shows what the comment will say


def test_no_change_says_so(pull_request: Path) -> None:
    done = plan_sh(pull_request)
    assert done.returncode == 0 and "plan.sh: no changes" in done.stdout
    assert "No changes." in (pull_request / "plan.md").read_text()


def test_an_invalid_branch_fails_with_the_problems(pull_request: Path) -> None:
    (pull_request / ALIASES).write_text("sales: \n")
    git(pull_request, "commit", "--quiet", "-am", "Break the aliases")
    done = plan_sh(pull_request)
    assert done.returncode == 1
    assert f"{ALIASES}:1:" in done.stdout
    assert "plan.sh: the branch does not validate: fix the problems above" in done.stderr
    assert not (pull_request / "plan.md").exists()


@pytest.mark.parametrize("usage_code", [2, 64])
def test_a_usage_error_is_a_failure_whatever_its_exit_code(
    pull_request: Path, usage_code: int
) -> None:
    """Before usage errors moved to 64, argparse's 2 looked like "changes": not here."""
    fake = pull_request.parent / "gm"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = validate ] && exit 0\n'
        'echo "usage: gitops-mail [-h] ..." >&2\n'
        f"exit {usage_code}\n"
    )
    fake.chmod(0o755)
    done = plan_sh(pull_request, gm=str(fake))
    assert done.returncode == 1
    assert f"plan.sh: gitops-mail plan failed (exit {usage_code})" in done.stderr


def test_the_workflow_runs_the_script_on_pull_requests() -> None:
    import yaml  # noqa: PLC0415

    flow = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in flow[True]  # YAML 1.1 reads the key `on` as true
    steps = flow["jobs"]["plan"]["steps"]
    runs = "\n".join(step.get("run", "") for step in steps)
    assert 'sh ci/plan.sh "origin/${{ github.base_ref }}"' in runs
    assert "gh pr comment" in runs
