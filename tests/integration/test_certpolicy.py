"""Certificate sources against the host's policy (``policy.certificate_dirs``), on real files.

A push names the paths; the host reads only inside its allowed directories,
as named and as resolved, and says nothing about a refused path: an existing
root-only key, a missing file and /etc/shadow are refused in the same words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.policy import HostPolicy
from gitops_mail.host.certs import allowed as certpolicy
from gitops_mail.host.certs.source import CertificateError, load_certificate

HOST = "mail.example.com"
HINT = "root can allow it in the host settings: policy.certificate_dirs"


def _pair(where: Path) -> tuple[Path, Path]:
    """A self-signed certificate for HOST and its key in ``where``: (fullchain, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    where.mkdir(parents=True, exist_ok=True)
    chain, private = where / "fullchain.pem", where / "privkey.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    private.write_bytes(pem)
    return chain, private


def files(chain: Path | str, key: Path | str) -> CertificateSource:
    return CertificateSource(HOST, "files", None, str(chain), str(key), 4)


def refusal(source: CertificateSource, policy: HostPolicy) -> tuple[str, str, str, int]:
    with pytest.raises(CertificateError) as caught:
        load_certificate(source, policy=policy)
    exc = caught.value
    return exc.message, exc.hint, exc.code, exc.line


@pytest.fixture
def allowed(tmp_path: Path) -> tuple[HostPolicy, Path, Path]:
    """A policy allowing ``tmp_path/certs`` only, a good pair in it: (policy, chain, key)."""
    chain, key = _pair(tmp_path / "certs" / "mail")
    return HostPolicy(certificate_dirs=(str(tmp_path / "certs"),)), chain, key


def test_a_pair_inside_the_allowed_dirs_is_read(allowed) -> None:
    policy, chain, key = allowed
    assert load_certificate(files(chain, key), policy=policy).names == (HOST,)


def test_an_existing_root_only_key_and_a_missing_one_are_refused_in_the_same_words(
    tmp_path: Path, allowed
) -> None:
    policy, chain, _ = allowed
    secret_dir = tmp_path / "secret"
    _, secret = _pair(secret_dir)
    secret.chmod(0o600)
    secret_dir.chmod(0o700)
    other = tmp_path / "other"  # the same name, nothing there
    outside = {
        "existing key": secret,
        "missing": other / "privkey.pem",
        "a directory": secret_dir,
    }
    said = {what: refusal(files(chain, path), policy) for what, path in outside.items()}

    text = "certificate 'mail.example.com': key file {} is not allowed by this host's policy"
    assert said == {
        what: (text.format(path), HINT, "policy.certificate-dirs", 4)
        for what, path in outside.items()
    }
    shadow = refusal(files(chain, "/etc/shadow"), policy)
    nothing = refusal(files(chain, "/etc/no-such-file"), policy)
    assert shadow[0].replace("/etc/shadow", "P") == nothing[0].replace("/etc/no-such-file", "P")
    assert shadow[1:] == nothing[1:]


def test_a_refused_path_is_never_opened(tmp_path: Path, allowed) -> None:
    """Judged in a child with an audit hook: no ``open`` of the refused path, ever."""
    policy, chain, _ = allowed
    secret = _pair(tmp_path / "secret")[1]
    child = f"""
import sys
opened = []
sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == "open" else None)
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.policy import HostPolicy
from gitops_mail.host.certs.source import CertificateError, load_certificate
source = CertificateSource("x", "files", None, {str(chain)!r}, {str(secret)!r}, 1)
try:
    load_certificate(source, policy=HostPolicy(certificate_dirs={policy.certificate_dirs!r}))
except CertificateError as exc:
    print(exc.code)
print({str(secret)!r} in opened, {str(tmp_path / "secret")!r} in opened)
"""
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["policy.certificate-dirs", "False False"]


def test_a_symlink_out_of_the_allowed_dirs_is_refused_whatever_it_points_at(
    tmp_path: Path, allowed
) -> None:
    policy, chain, _ = allowed
    secret = _pair(tmp_path / "secret")[1]
    to_key = tmp_path / "certs" / "to-key.pem"
    to_key.symlink_to(secret)
    to_nothing = tmp_path / "certs" / "to-nothing.pem"
    to_nothing.symlink_to(tmp_path / "secret" / "missing.pem")
    words = [refusal(files(chain, link), policy) for link in (to_key, to_nothing)]
    assert [refusal[0] for refusal in words] == [
        f"certificate 'mail.example.com': key file {link} is not allowed by this host's policy"
        for link in (to_key, to_nothing)
    ]
    assert str(secret) not in repr(words)


def test_certbot_live_links_into_archive_are_allowed(tmp_path: Path) -> None:
    etc = tmp_path / "letsencrypt"
    chain, key = _pair(etc / "archive" / HOST)
    live = etc / "live" / HOST
    live.mkdir(parents=True)
    (live / "fullchain.pem").symlink_to(f"../../archive/{HOST}/{chain.name}")
    (live / "privkey.pem").symlink_to(f"../../archive/{HOST}/{key.name}")
    source = CertificateSource(HOST, "certbot", str(live), None, None, 4)
    policy = HostPolicy(certificate_dirs=(str(etc),))
    assert load_certificate(source, policy=policy).names == (HOST,)
    outside = HostPolicy(certificate_dirs=(str(etc / "live"),))  # archive/ is not allowed
    assert refusal(source, outside)[0] == (
        f"certificate 'mail.example.com': fullchain file {live}/fullchain.pem "
        "is not allowed by this host's policy"
    )


def test_a_directory_source_that_climbs_out_is_refused_before_it_is_looked_at(
    tmp_path: Path,
) -> None:
    policy = HostPolicy(certificate_dirs=(str(tmp_path / "acme"),))
    climbing = CertificateSource(HOST, "acme_sh", f"{tmp_path}/acme/../secret", None, None, 4)
    assert refusal(climbing, policy)[0] == (
        f"certificate 'mail.example.com': directory {tmp_path}/acme/../secret "
        "is not allowed by this host's policy"
    )


def test_an_allowed_dir_that_is_itself_a_link_allows_what_is_behind_it(tmp_path: Path) -> None:
    chain, key = _pair(tmp_path / "real" / "mail")
    (tmp_path / "acme").symlink_to(tmp_path / "real")
    policy = HostPolicy(certificate_dirs=(str(tmp_path / "acme"),))
    source = files(tmp_path / "acme" / "mail" / chain.name, tmp_path / "acme" / "mail" / key.name)
    assert load_certificate(source, policy=policy).names == (HOST,)


def test_a_file_open_outside_the_allowed_dirs_is_caught_by_its_descriptor(tmp_path: Path) -> None:
    inside, outside = tmp_path / "in", tmp_path / "out"
    inside.mkdir()
    outside.mkdir()
    (outside / "f").write_bytes(b"x")
    fd = os.open(outside / "f", os.O_RDONLY)
    try:
        assert certpolicy.opened_allowed(fd, (str(inside),)) is False
        assert certpolicy.opened_allowed(fd, (str(outside),)) is True
    finally:
        os.close(fd)
