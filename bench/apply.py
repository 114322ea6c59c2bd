"""Apply benchmark: push-to-proven on a real chasquid, inside the private netns.

Three figures, each the median over fresh ``gitops-mail apply`` processes:
a one-alias change on example-conf (validate, stage, pre-flight, swap,
restart, probes), a no-op apply (revision already live), and a one-alias
change at the core benchmark's scale (10,000 users, 10,000 aliases).
chasquid runs under ``gitops-mail supervise`` with the sandbox layout of
``scripts/demo``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.core import EXAMPLE, _git, make_scale_repo
from bench.harness import GITOPS_MAIL, row

CONF = """hostname: "mail.example.com"
smtp_address: "127.0.0.1:2025"
submission_address: "127.0.0.1:2587"
submission_over_tls_address: "127.0.0.1:2465"
data_dir: "{root}/data"
mail_log_path: "{root}/mail.log"
mail_delivery_agent_bin: "/bin/true"
"""


def _cert(root: Path) -> str:
    certs = root / "certs"
    certs.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=mail.example.com",
            "-addext",
            "subjectAltName=DNS:mail.example.com,IP:127.0.0.1",
            "-keyout",
            str(certs / "privkey.pem"),
            "-out",
            str(certs / "fullchain.pem"),
        ],
        check=True,
        capture_output=True,
    )
    return f"files: {{fullchain: {certs}/fullchain.pem, key: {certs}/privkey.pem}}"


def _example_repo(root: Path, cert_source: str) -> Path:
    repo = root / "example"
    shutil.copytree(EXAMPLE, repo, symlinks=True)
    (repo / "chasquid" / "chasquid.conf").write_text(CONF.format(root=root))
    manifest = repo / "gitops-mail.yaml"
    text = manifest.read_text().replace("acme_sh: /root/.acme.sh/mail.example.com_ecc", cert_source)
    manifest.write_text(text)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "example")
    return repo


def _host(root: Path, repo: Path) -> Path:
    """Host settings whose policy allows what CONF and ``_cert`` make the host use."""
    host = root / "host.yaml"
    (root / "etc-chasquid").mkdir()
    host.write_text(
        f"repo: {repo}\nbranch: main\nstate_dir: {root}/state\n"
        f"chasquid:\n  config_dir: {root}/etc-chasquid\n  service: supervise\n"
        f"policy:\n  delivery_agents: [/bin/true]\n  certificate_dirs: [{root}/certs]\n"
        f"  chasquid_write_dirs: [{root}/data, {root}/mail.log]\n"
    )
    return host


@contextmanager
def _supervised(host: Path) -> Iterator[None]:
    env = {**os.environ, "GITOPS_MAIL_CONFIG": str(host)}
    with open(host.parent / "supervise.log", "wb") as log:
        proc = subprocess.Popen([GITOPS_MAIL, "supervise"], env=env, stdout=log, stderr=log)
    try:
        time.sleep(0.2)  # let it take its lock; apply restarts chasquid through it
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _alias_changes(repo: Path, domain_dir: str, runs: int) -> Iterator[None]:
    """Before each measured apply: commit one more alias."""
    aliases = repo / "chasquid" / "domains" / domain_dir / "aliases"
    for i in range(runs + 1):
        with aliases.open("a") as f:
            f.write(f"bench{i}: postmaster\n")
        _git(repo, "commit", "-qam", f"alias bench{i}")
        yield


def _apply_rows(
    root: Path, repo: Path, domain_dir: str, label: str, runs: int
) -> list[dict[str, object]]:
    host = _host(root, repo)
    env = {**os.environ, "GITOPS_MAIL_CONFIG": str(host)}
    argv = [GITOPS_MAIL, "apply"]
    with _supervised(host):
        first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if first.returncode != 0:
            raise RuntimeError(f"first apply failed: {first.stderr}")
        changes = _alias_changes(repo, domain_dir, runs)
        change = row(
            f"apply one-alias change, {label}",
            "<= 1000 ms" if label == "example-conf" else "<= 3000 ms",
            argv,
            runs,
            env=env,
            before=lambda: next(changes),
        )
        noop = row(f"apply no-op (already live), {label}", "<= 300 ms", argv, runs, env=env)
        history = subprocess.run(
            [GITOPS_MAIL, "history", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    attempts = json.loads(history.stdout)
    change["phases_ms"] = _median_phases(a for a in attempts if a["result"] == "applied")
    noop["phases_ms"] = _median_phases(a for a in attempts if a["result"] == "unchanged")
    return [change, noop]


def _median_phases(attempts: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Median of each phase (as recorded in history) over the given attempts."""
    by_phase: dict[str, list[float]] = {}
    for attempt in attempts:
        for phase, ms in attempt["phases_ms"].items():
            by_phase.setdefault(phase, []).append(ms)
    return {phase: statistics.median(v) for phase, v in by_phase.items()}


def run(runs: int) -> dict[str, object]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "example"
        root.mkdir()
        repo = _example_repo(root, _cert(root))
        rows += _apply_rows(root, repo, "example.com", "example-conf", runs)
        scale_root = Path(tmp) / "scale-root"
        scale_root.mkdir()
        cert = _cert(scale_root)
        scale = make_scale_repo(scale_root, CONF.format(root=scale_root), cert)
        rows += _apply_rows(
            scale_root, scale, "d50.example.com", "10k users/10k aliases", max(3, runs // 2)
        )
    return {"suite": "apply", "rows": rows}
