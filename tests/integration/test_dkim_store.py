"""The DKIM key store on real files, and `gitops-mail dkim export|import` on a real repo."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from gitops_mail.cli import main as cli
from gitops_mail.core.dns.zone import committed_keys, render_zones
from gitops_mail.core.manifest.model import parse_manifest
from gitops_mail.core.state import load_state
from gitops_mail.daemon.commitback import commit_back
from gitops_mail.errors import GitopsMailError
from gitops_mail.git import read as gitread
from gitops_mail.host.dkim import keygen
from gitops_mail.host.dkim.store import KeyStore, public_keys, signing_keys
from gitops_mail.host.settings import HostSettings

MANIFEST = """\
version: 1
domains:
  example.com: {dkim: {selectors: [s2026, s2025]}}
  example.org: {dkim: {selectors: [e1], algorithm: ed25519}}
  example.net: {}
"""


@pytest.fixture(autouse=True)
def _logging_reset() -> Iterator[None]:
    """`dkim` configures logging onto the (captured) stderr: undo it after each test."""
    yield
    structlog.reset_defaults()


def manifest(text: str = MANIFEST):  # type: ignore[no-untyped-def]
    parsed, _ = parse_manifest(text.encode())
    assert parsed is not None
    return parsed


def files(root: Path) -> dict[str, tuple[bytes, int, int]]:
    return {
        str(p.relative_to(root)): (
            p.read_bytes() if p.is_file() else b"",
            p.stat().st_ino,
            p.stat().st_mode,
        )
        for p in sorted(root.rglob("*"))
    }


def test_a_key_per_selector_is_made_once_with_explicit_modes_whatever_the_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        with capture_logs() as events:
            made = signing_keys(tmp_path, manifest(), create=True)
    finally:
        os.umask(old)
    assert made.made == (
        "s2026._domainkey.example.com",
        "s2025._domainkey.example.com",
        "e1._domainkey.example.org",
    )
    store = tmp_path / "dkim"
    assert {k: stat.S_IMODE(v[2]) for k, v in files(store).items()} == {
        "example.com": 0o700,
        "example.com/s2025.pem": 0o600,
        "example.com/s2025.pub": 0o600,
        "example.com/s2026.pem": 0o600,
        "example.com/s2026.pub": 0o600,
        "example.org": 0o700,
        "example.org/e1.pem": 0o600,
        "example.org/e1.pub": 0o600,
    }
    assert stat.S_IMODE(store.stat().st_mode) == 0o700
    assert [e["event"] for e in events] == ["dkim.key_made"] * 3
    assert all(set(e) == {"event", "domain", "selector", "algorithm", "log_level"} for e in events)
    rsa = (store / "example.com" / "s2026.pem").read_bytes()
    assert rsa.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert keygen.public_of(rsa) == made_public(tmp_path, "example.com", "s2026")
    assert public_keys(tmp_path, manifest())[("example.org", "e1")].k == "ed25519"

    before = files(store)
    again = signing_keys(tmp_path, manifest(), create=True)
    assert again.made == ()
    assert files(store) == before  # bytes, inodes and modes: nothing rewritten
    assert again.pems == made.pems


def made_public(state_dir: Path, domain: str, selector: str):  # type: ignore[no-untyped-def]
    key = KeyStore(state_dir).load(domain, selector)
    assert key is not None
    return key.public


def test_a_dry_run_makes_keys_in_memory_only(tmp_path: Path) -> None:
    dry = signing_keys(tmp_path, manifest(), create=False)
    assert len(dry.made) == 3
    assert not (tmp_path / "dkim").exists()


def test_a_symlink_in_place_of_the_store_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "dkim").symlink_to(elsewhere)
    with pytest.raises(GitopsMailError) as refused:
        signing_keys(tmp_path / "state", manifest(), create=True)
    assert (
        refused.value.message
        == f"{tmp_path / 'state' / 'dkim'} is not a directory (a symlink or a file)"
    )
    assert list(elsewhere.iterdir()) == []


# --- export and import --------------------------------------------------------------------


@pytest.fixture
def host(tmp_path: Path, workdir, origin, monkeypatch):  # type: ignore[no-untyped-def]
    """A host whose repo commits a zone publishing a key made by another host."""
    other = tmp_path / "other-host"
    signing_keys(other, manifest(), create=True)
    conf = {
        "gitops-mail.yaml": MANIFEST,
        "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
        "chasquid/domains/example.com/aliases": "postmaster: a@example.net\n",
        "chasquid/domains/example.org/aliases": "postmaster: a@example.net\n",
        "chasquid/domains/example.net/aliases": "postmaster: a@example.org\n",
    }
    workdir.commit(conf, "base")
    workdir.push()
    state = load_state(gitread.read_revision(origin.path, "main"))
    zones = render_zones(state, public_keys(other, state.manifest))
    workdir.commit({k: v for k, v in zones.items() if "example.com" in k}, "zone")
    workdir.push()
    settings = tmp_path / "host.yaml"
    settings.write_text(
        f"repo: {origin.path}\nbranch: main\nstate_dir: {tmp_path / 'state'}\n"
        f"chasquid: {{config_dir: {tmp_path / 'etc'}}}\n"
    )
    (tmp_path / "etc").mkdir()
    monkeypatch.setenv("GITOPS_MAIL_CONFIG", str(settings))
    return other


def run(capsysbinary, *args: str) -> tuple[int, bytes, bytes]:  # type: ignore[no-untyped-def]
    code = cli.main(list(args))
    out, err = capsysbinary.readouterr()
    return code, out, err


def test_import_refuses_a_key_that_is_not_the_published_one(
    host: Path, tmp_path: Path, capsysbinary
) -> None:
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(keygen.generate("rsa-2048")[0])
    code, out, err = run(capsysbinary, "dkim", "import", "example.com", "s2026", str(stranger))
    assert (code, out) == (1, b"")
    assert err.decode() == (
        "gitops-mail: error: refusing the key: its public half is not the one "
        "dns/example.com.zone publishes for s2026._domainkey.example.com, so every signature "
        "made with it would fail\n"
        "    hint: export the key from the host whose key the zone publishes, or rotate to a "
        "new selector instead\n"
    )
    assert not (tmp_path / "state" / "dkim").exists()
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGJ5dGVz\n-----END PRIVATE KEY-----\n"
    )
    code, _, err = run(capsysbinary, "dkim", "import", "example.com", "s2026", str(garbage))
    assert code == 1
    assert b"c2VjcmV0" not in err and b"the file holds no unencrypted PEM private key" in err


def test_a_key_moves_from_one_host_to_another(host: Path, tmp_path: Path, capsysbinary) -> None:
    # export on the other host, import here: the published key, so accepted
    moved = tmp_path / "moved.pem"
    code, out, err = run(
        capsysbinary,
        "--config",
        str(tmp_path / "host.yaml"),
        "dkim",
        "export",
        "example.com",
        "s2026",
        "-o",
        str(moved),
    )
    assert code == 1  # this host has no key yet
    assert b"this host has no DKIM key for s2026._domainkey.example.com" in err
    original = (host / "dkim" / "example.com" / "s2026.pem").read_bytes()
    moved.write_bytes(original)
    code, out, err = run(capsysbinary, "dkim", "import", "example.com", "s2026", str(moved))
    assert code == 0, err
    assert out.decode().splitlines() == [
        "imported s2026._domainkey.example.com",
        "next: `gitops-mail apply` (or `gitops-mail reconcile-now`) installs it",
    ]
    assert err.startswith(b"gitops-mail: warning: this is the private DKIM key of s2026._domainkey")
    stored = tmp_path / "state" / "dkim" / "example.com" / "s2026.pem"
    assert stored.read_bytes() == original
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600

    backup = tmp_path / "backup.pem"
    code, out, err = run(capsysbinary, "dkim", "export", "example.com", "s2026", "-o", str(backup))
    assert (code, out) == (0, b"")
    assert backup.read_bytes() == original
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert original not in err
    code, _, err = run(capsysbinary, "dkim", "export", "example.com", "s2026", "-o", str(backup))
    assert code == 1 and b"cannot create" in err  # never overwrites a file


def test_commit_back_publishes_the_store_s_key_whatever_the_push_wrote_in_the_zone(
    tmp_path: Path, workdir, origin
) -> None:
    """A pusher who forges the DKIM record in dns/<d>.zone changes nothing that signs:
    the daemon's commit-back writes the key this host signs with back over it."""
    state_dir = tmp_path / "state"
    made = signing_keys(state_dir, manifest(), create=True)
    conf = {
        "gitops-mail.yaml": MANIFEST,
        "chasquid/chasquid.conf": 'hostname: "mail.example.com"\n',
        **{
            f"chasquid/domains/{d}/aliases": "postmaster: a@b.example\n"
            for d in ("example.com", "example.org", "example.net")
        },
    }
    workdir.commit(conf, "base")
    workdir.push()
    base = load_state(gitread.read_revision(origin.path, "main"))
    forged = {("example.com", "s2026"): keygen.generate("rsa-2048")[1]}
    zone = render_zones(base, forged)["dns/example.com.zone"]
    revision = workdir.commit({"dns/example.com.zone": zone}, "my key, please")
    workdir.push()
    settings = HostSettings(path=tmp_path / "h.yaml", repo=origin.path, state_dir=state_dir)
    done = commit_back(settings, load_state(gitread.read_revision(origin.path, revision)), revision)
    assert done.result == "committed"
    published = load_state(gitread.read_revision(origin.path, "main"))

    ours = public_keys(state_dir, published.manifest)
    assert committed_keys(published)[("example.com", "s2026")] == ours[("example.com", "s2026")]
    assert committed_keys(published)[("example.com", "s2026")] != forged[("example.com", "s2026")]
    assert len(made.files) == 3
