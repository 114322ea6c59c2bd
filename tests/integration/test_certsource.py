"""Certificates read from acme.sh, certbot and explicit files laid out in tmp_path."""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gitops_mail.core.certs import CertMaterial
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, Severity
from gitops_mail.host.certs.source import (
    CertificateError,
    certificate_problems,
    covers,
    load_certificate,
    source_paths,
)

HOST = "mail.example.com"
LINE = 9
AT = f"at gitops-mail.yaml:{LINE}"
NOT_AFTER = datetime(2099, 1, 1, 12, 0, tzinfo=UTC)
PEM = serialization.Encoding.PEM
NO_PASSWORD = serialization.NoEncryption()
CERTBOT_HINT = "certbot keeps fullchain.pem and privkey.pem in its live directory"
PEM_CHAIN_HINT = (
    "the fullchain file must hold the server's certificate, then its intermediates, "
    "each between -----BEGIN CERTIFICATE----- and -----END CERTIFICATE-----"
)
KEY_HINT = "chasquid needs an unencrypted RSA, ECDSA or Ed25519 private key in PEM"
TMP = HostPolicy(certificate_dirs=(tempfile.gettempdir(),))  # every source of these tests


def load(source: CertificateSource, **kwargs) -> CertMaterial:
    """``load_certificate`` on a host whose policy allows the temporary directories."""
    return load_certificate(source, policy=TMP, **kwargs)


# --- certificates made with cryptography ----------------------------------------------------


@functools.cache
def _rsa_key(index: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@functools.cache
def _dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)  # noqa: S505 (only its type matters; fast)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signer, *, ca, names=(), not_after=NOT_AFTER):
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        san = x509.SubjectAlternativeName([x509.DNSName(name) for name in names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


@functools.cache
def _ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _ec_key()
    return _certificate("Test CA", "Test CA", key.public_key(), key, ca=True), key


def issue(key, names=(HOST,), not_after=NOT_AFTER) -> tuple[x509.Certificate, x509.Certificate]:
    """(leaf, intermediate) for ``key``, signed by the test CA."""
    ca, ca_key = _ca()
    leaf = _certificate(
        names[0] if names else "no-san", "Test CA", key.public_key(), ca_key,
        ca=False, names=names, not_after=not_after,
    )  # fmt: skip
    return leaf, ca


def chain_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(PEM) for cert in certs)


def key_pem(key, fmt=serialization.PrivateFormat.TraditionalOpenSSL, password=None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else NO_PASSWORD
    return key.private_bytes(PEM, fmt, encryption)


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# --- layouts --------------------------------------------------------------------------------


def acme_sh(home: Path, key, directory=HOST, domain=HOST, **cert) -> CertificateSource:
    """acme.sh's files for ``domain`` in ``home/.acme.sh/<directory>``."""
    leaf, ca = issue(key, **cert)
    where = home / ".acme.sh" / directory
    write(where / f"{domain}.cer", chain_pem(leaf))
    write(where / "ca.cer", chain_pem(ca))
    write(where / "fullchain.cer", chain_pem(leaf, ca))
    write(where / f"{domain}.key", key_pem(key))
    write(where / f"{domain}.conf", f"Le_Domain='{domain}'\n".encode())
    return CertificateSource(HOST, "acme_sh", str(where), None, None, LINE)


def certbot(etc: Path, keys, name=HOST) -> CertificateSource:
    """certbot's archive with one generation per key, live/ linking to the last one."""
    archive, live = etc / "archive" / name, etc / "live" / name
    for generation, key in enumerate(keys, start=1):
        leaf, ca = issue(key)
        write(archive / f"cert{generation}.pem", chain_pem(leaf))
        write(archive / f"chain{generation}.pem", chain_pem(ca))
        write(archive / f"fullchain{generation}.pem", chain_pem(leaf, ca))
        write(archive / f"privkey{generation}.pem", key_pem(key, serialization.PrivateFormat.PKCS8))
    live.mkdir(parents=True)
    for kind in ("cert", "chain", "fullchain", "privkey"):
        (live / f"{kind}.pem").symlink_to(f"../../archive/{name}/{kind}{len(keys)}.pem")
    return CertificateSource(name, "certbot", str(live), None, None, LINE)


def files(root: Path, chain: bytes, key: bytes) -> CertificateSource:
    fullchain = write(root / "certs" / "chain.pem", chain)
    private = write(root / "private" / "key.pem", key)
    return CertificateSource(HOST, "files", None, str(fullchain), str(private), LINE)


def good_files(root: Path, key=None) -> CertificateSource:
    key = key or _ec_key()
    return files(root, chain_pem(*issue(key)), key_pem(key))


# --- reading --------------------------------------------------------------------------------


def _der_sha256(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _same_key(material: CertMaterial, key) -> bool:
    loaded = serialization.load_pem_private_key(material.key, password=None)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return loaded.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)


def test_acme_sh_rsa_directory(tmp_path):
    key = _rsa_key(0)
    source = acme_sh(tmp_path, key, names=(HOST, "Smtp.Example.com", HOST))
    where = tmp_path / ".acme.sh" / HOST

    material = load(source)

    leaf, ca = x509.load_pem_x509_certificates((where / "fullchain.cer").read_bytes())
    assert material.name == HOST
    assert material.fullchain == chain_pem(leaf, ca)
    assert material.key.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert _same_key(material, key)
    assert material.fingerprint == _der_sha256(leaf)
    assert material.names == (HOST, "smtp.example.com")
    assert material.not_after == NOT_AFTER
    assert material.source_files == (str(where / "fullchain.cer"), str(where / f"{HOST}.key"))


def test_acme_sh_ecc_directory_names_the_key_after_the_domain(tmp_path):
    key = _ec_key()
    source = acme_sh(tmp_path, key, directory=f"{HOST}_ecc")
    where = tmp_path / ".acme.sh" / f"{HOST}_ecc"

    material = load(source)

    assert _same_key(material, key)
    assert material.source_files == (str(where / "fullchain.cer"), str(where / f"{HOST}.key"))


def test_acme_sh_wildcard_directory(tmp_path):
    key = _ec_key()
    source = acme_sh(
        tmp_path, key, directory="*.example.com_ecc", domain="*.example.com",
        names=("*.example.com", "example.com"),
    )  # fmt: skip

    material = load(source)

    assert material.names == ("*.example.com", "example.com")
    assert certificate_problems(source, material, HOST) == []


def test_certbot_live_links_are_followed_to_the_newest_archive_files(tmp_path):
    etc = tmp_path / "letsencrypt"
    old, new = _ec_key(), _rsa_key(1)
    source = certbot(etc, [old, new])
    live, archive = etc / "live" / HOST, etc / "archive" / HOST

    material = load(source)

    assert _same_key(material, new)
    assert material.fullchain == (archive / "fullchain2.pem").read_bytes()
    assert material.source_files == (
        str(live / "fullchain.pem"),
        str(live / "privkey.pem"),
        str(archive / "fullchain2.pem"),
        str(archive / "privkey2.pem"),
    )


def test_explicit_files_are_re_encoded_certificates_only(tmp_path):
    key = _rsa_key(0)
    leaf, ca = issue(key)
    chain = b"subject=CN = mail.example.com\n" + chain_pem(leaf) + key_pem(key) + chain_pem(ca)
    source = files(tmp_path, chain, key_pem(key))

    material = load(source)

    assert material.fullchain == chain_pem(leaf, ca)
    assert b"PRIVATE KEY" not in material.fullchain
    assert material.key == key_pem(key, serialization.PrivateFormat.PKCS8)


def test_key_file_may_carry_ec_parameters_and_the_certificate(tmp_path):
    key = _ec_key()
    leaf, ca = issue(key)
    parameters = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    source = files(tmp_path, chain_pem(leaf, ca), parameters + key_pem(key) + chain_pem(leaf))

    material = load(source)

    assert material.key == key_pem(key, serialization.PrivateFormat.PKCS8)


def test_source_paths_without_touching_the_disk():
    def source(kind, directory=None, fullchain=None, key=None):
        return CertificateSource(HOST, kind, directory, fullchain, key, LINE)

    assert source_paths(source("acme_sh", "/root/.acme.sh/a.example_ecc")) == (
        Path("/root/.acme.sh/a.example_ecc/fullchain.cer"),
        Path("/root/.acme.sh/a.example_ecc/a.example.key"),
    )
    assert source_paths(source("acme_sh", "/root/.acme.sh/a.example")) == (
        Path("/root/.acme.sh/a.example/fullchain.cer"),
        Path("/root/.acme.sh/a.example/a.example.key"),
    )
    assert source_paths(source("certbot", "/etc/letsencrypt/live/a.example")) == (
        Path("/etc/letsencrypt/live/a.example/fullchain.pem"),
        Path("/etc/letsencrypt/live/a.example/privkey.pem"),
    )
    assert source_paths(source("files", fullchain="/srv/c.pem", key="/srv/k.pem")) == (
        Path("/srv/c.pem"),
        Path("/srv/k.pem"),
    )


def test_material_repr_leaves_the_key_out(tmp_path):
    key = _ec_key()
    material = load(good_files(tmp_path, key))

    shown = repr(material) + str(material)

    assert "key=" not in shown
    assert "PRIVATE" not in shown
    assert not any(line in shown for line in _secret_lines(key))
    assert f"fingerprint='{material.fingerprint}'" in shown


# --- errors ---------------------------------------------------------------------------------

_KEYS_SEEN: list[object] = []


def _secret_lines(key) -> list[str]:
    """The base64 lines of every encoding of ``key`` (each as long as a line goes)."""
    lines = []
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        try:
            pem = key_pem(key, fmt).decode()
        except ValueError:
            continue
        lines += [line for line in pem.splitlines() if line and not line.startswith("-----")]
    return lines


def expect(source, message, hint, code, **kwargs) -> CertificateError:
    with pytest.raises(CertificateError) as caught:
        load(source, **kwargs)
    exc = caught.value
    assert (exc.message, exc.hint, exc.code, exc.name, exc.line) == (
        message,
        hint,
        code,
        HOST,
        LINE,
    )
    shown = str(exc) + repr(exc) + exc.hint + "".join(traceback.format_exception(exc))
    assert "PRIVATE KEY" not in shown
    for key in _KEYS_SEEN:
        assert not any(line in shown for line in _secret_lines(key))
    return exc


@pytest.fixture
def key():
    made = _ec_key()
    _KEYS_SEEN[:] = [made, _rsa_key(0), _rsa_key(1)]
    return made


def test_acme_sh_directory_missing(tmp_path, key):
    where = tmp_path / ".acme.sh" / HOST
    source = CertificateSource(HOST, "acme_sh", str(where), None, None, LINE)
    expect(
        source,
        f"certificate 'mail.example.com': directory {where} does not exist",
        f"fix the acme_sh entry {AT}: acme.sh keeps a certificate in ~/.acme.sh/<domain>, "
        "or <domain>_ecc for an ECDSA key (acme.sh --list lists them)",
        "cert.missing",
    )


def test_acme_sh_directory_missing_but_ecc_sibling_exists(tmp_path, key):
    acme_sh(tmp_path, key, directory=f"{HOST}_ecc")
    where = tmp_path / ".acme.sh" / HOST
    source = CertificateSource(HOST, "acme_sh", str(where), None, None, LINE)
    expect(
        source,
        f"certificate 'mail.example.com': directory {where} does not exist",
        f"acme.sh keeps an ECDSA certificate in {where}_ecc: fix the acme_sh entry {AT}",
        "cert.missing",
    )


def test_certbot_directory_is_a_file(tmp_path, key):
    where = write(tmp_path / "live" / HOST, b"x")
    source = CertificateSource(HOST, "certbot", str(where), None, None, LINE)
    expect(
        source,
        f"certificate 'mail.example.com': directory {where} is not a directory",
        f"fix the certbot entry {AT}: certbot keeps certificates in /etc/letsencrypt/live/<name> "
        "(certbot certificates lists them)",
        "cert.missing",
    )


def test_acme_sh_key_missing(tmp_path, key):
    source = acme_sh(tmp_path, key, directory=f"{HOST}_ecc")
    missing = tmp_path / ".acme.sh" / f"{HOST}_ecc" / f"{HOST}.key"
    missing.rename(missing.with_name(f"{HOST}_ecc.key"))
    expect(
        source,
        f"certificate 'mail.example.com': key file {missing} does not exist",
        f"acme.sh names the key after the certificate's main domain, {HOST}.key: "
        f"check the acme_sh entry {AT}",
        "cert.missing",
    )


def test_acme_sh_fullchain_missing(tmp_path, key):
    source = acme_sh(tmp_path, key)
    missing = tmp_path / ".acme.sh" / HOST / "fullchain.cer"
    missing.unlink()
    expect(
        source,
        f"certificate 'mail.example.com': fullchain file {missing} does not exist",
        "acme.sh writes fullchain.cer when it issues the certificate: "
        f"issue it (acme.sh --issue -d {HOST}) or fix the acme_sh entry {AT}",
        "cert.missing",
    )


def test_certbot_file_missing(tmp_path, key):
    source = certbot(tmp_path, [key])
    missing = tmp_path / "live" / HOST / "privkey.pem"
    missing.unlink()
    expect(
        source,
        f"certificate 'mail.example.com': key file {missing} does not exist",
        f"{CERTBOT_HINT}: fix the certbot entry {AT}",
        "cert.missing",
    )


def test_certbot_broken_symlink(tmp_path, key):
    source = certbot(tmp_path, [key])
    (tmp_path / "archive" / HOST / "fullchain1.pem").unlink()
    link = tmp_path / "live" / HOST / "fullchain.pem"
    expect(
        source,
        f"certificate 'mail.example.com': fullchain file {link} is a broken symlink "
        f"to ../../archive/{HOST}/fullchain1.pem",
        "certbot update_symlinks repairs the live directory's links",
        "cert.missing",
    )


def test_explicit_file_missing(tmp_path, key):
    source = good_files(tmp_path, key)
    Path(source.key or "").unlink()
    expect(
        source,
        f"certificate 'mail.example.com': key file {source.key} does not exist",
        f"install the key file there, or fix the files entry {AT}",
        "cert.missing",
    )


def test_symlink_loop_cannot_be_read(tmp_path, key):
    source = good_files(tmp_path, key)
    chain = Path(source.fullchain or "")
    chain.unlink()
    chain.symlink_to(chain.name)
    expect(
        source,
        f"certificate 'mail.example.com': cannot read fullchain file {chain}: "
        "Too many levels of symbolic links",
        "check its permissions: the user running gitops-mail must be able to read it",
        "cert.unreadable",
    )


_UNREADABLE_CHILD = """
import os, sys
from gitops_mail.host.certs.source import CertificateError, load_certificate
from gitops_mail.core.manifest.model import CertificateSource
from gitops_mail.core.policy import HostPolicy
if os.geteuid() == 0:  # root reads anything: become nobody
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
where = sys.argv[1]
source = CertificateSource("x", "files", None, f"{where}/chain.pem", f"{where}/key.pem", 3)
try:
    load_certificate(source, policy=HostPolicy(certificate_dirs=(where,)))
except CertificateError as exc:
    print(exc.message)
    print(exc.hint)
    print(exc.code)
"""


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's own are root's only)."""
    where = Path(tempfile.mkdtemp(prefix="gitops-certs-", dir="/tmp"))
    where.chmod(0o755)
    yield where
    shutil.rmtree(where)


def test_unreadable_key_is_named_with_a_hint(open_dir, key):
    write(open_dir / "chain.pem", chain_pem(*issue(key))).chmod(0o644)
    write(open_dir / "key.pem", key_pem(key)).chmod(0o000)

    done = subprocess.run(
        [sys.executable, "-c", _UNREADABLE_CHILD, str(open_dir)],
        cwd=open_dir,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.stderr == ""
    assert done.stdout.splitlines() == [
        f"certificate 'x': cannot read key file {open_dir}/key.pem: Permission denied",
        "check its permissions: the user running gitops-mail must be able to read it",
        "cert.unreadable",
    ]


@pytest.mark.parametrize(
    ("damage", "what", "hint"),
    [
        ("directory", "is not a regular file", f"check the files entry {AT}"),
        ("empty", "is empty", "install a renewed certificate and its key at {chain} and {key}"),
        ("huge", "is larger than 1 MiB", f"check the files entry {AT}"),
    ],
)
def test_odd_files(tmp_path, key, damage, what, hint):
    source = good_files(tmp_path, key)
    chain = Path(source.fullchain or "")
    chain.unlink()
    if damage == "directory":
        chain.mkdir()
    else:
        chain.write_bytes(b"\n \n" if damage == "empty" else b"A" * (1 << 20) + b"\n")
    expect(
        source,
        f"certificate 'mail.example.com': fullchain file {chain} {what}",
        hint.format(chain=source.fullchain, key=source.key),
        "cert.unreadable",
    )


def _corrupt_certificate() -> bytes:
    lines = chain_pem(_ca()[0]).splitlines(keepends=True)
    return b"".join(lines[:3] + lines[5:])


@pytest.mark.parametrize(
    ("chain", "what", "hint"),
    [
        (b"hello\n", "holds no PEM certificate", PEM_CHAIN_HINT),
        ("der", "holds no PEM certificate", PEM_CHAIN_HINT),
        ("corrupt", "holds a certificate that cannot be parsed", PEM_CHAIN_HINT),
        ("key", "holds a private key, not a certificate", "swapped"),
    ],
)
def test_fullchain_not_a_certificate(tmp_path, key, chain, what, hint):
    data = {
        "der": _ca()[0].public_bytes(serialization.Encoding.DER),
        "corrupt": _corrupt_certificate(),
        "key": key_pem(key),
    }.get(chain, chain)
    source = files(tmp_path, data, key_pem(key))
    swapped = f"the fullchain and key paths look swapped: fix the files entry {AT}"
    expect(
        source,
        f"certificate 'mail.example.com': {source.fullchain} {what}",
        swapped if hint == "swapped" else hint,
        "cert.not-pem",
    )


def test_acme_sh_swapped_files_hint_renewal(tmp_path, key):
    source = acme_sh(tmp_path, key, directory=f"{HOST}_ecc")
    chain = tmp_path / ".acme.sh" / f"{HOST}_ecc" / "fullchain.cer"
    chain.write_bytes(key_pem(key))
    expect(
        source,
        f"certificate 'mail.example.com': {chain} holds a private key, not a certificate",
        "the files look swapped or overwritten by hand: renew it with "
        f"acme.sh --renew -d {HOST} --ecc --force, and check its cron job",
        "cert.not-pem",
    )


@pytest.mark.parametrize(
    ("content", "what", "hint"),
    [
        ("garbage", "holds no PEM private key", KEY_HINT),
        ("certificate", "holds a certificate, not a private key", "swapped"),
        ("encrypted", "holds a passphrase-protected private key", "encrypted"),
        ("dsa", "holds a DSA key, which chasquid cannot use", KEY_HINT),
    ],
)
def test_key_not_a_usable_private_key(tmp_path, key, content, what, hint):
    leaf, ca = issue(key)
    dsa_key = _dsa_key()
    _KEYS_SEEN.append(dsa_key)
    data = {
        "garbage": b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n",
        "certificate": chain_pem(leaf),
        "encrypted": key_pem(key, serialization.PrivateFormat.PKCS8, b"secret"),
        "dsa": key_pem(dsa_key, serialization.PrivateFormat.PKCS8),
    }[content]
    source = files(tmp_path, chain_pem(leaf, ca), data)
    hints = {
        "swapped": f"the fullchain and key paths look swapped: fix the files entry {AT}",
        "encrypted": "chasquid cannot use an encrypted key: decrypt it with openssl pkey",
    }
    expect(
        source,
        f"certificate 'mail.example.com': {source.key} {what}",
        hints.get(hint, hint),
        "cert.bad-key",
    )


def test_key_of_another_certificate(tmp_path, key):
    source = files(tmp_path, chain_pem(*issue(_rsa_key(0))), key_pem(key))
    expect(
        source,
        f"certificate 'mail.example.com': the key in {source.key} does not match "
        f"the certificate in {source.fullchain}",
        f"use the key generated with this certificate: fix the files entry {AT}",
        "cert.key-mismatch",
    )


def test_certbot_key_of_another_generation(tmp_path, key):
    source = certbot(tmp_path, [key, _rsa_key(1)])
    live = tmp_path / "live" / HOST
    (live / "privkey.pem").unlink()
    (live / "privkey.pem").symlink_to(f"../../archive/{HOST}/privkey1.pem")
    expect(
        source,
        f"certificate 'mail.example.com': the key in {live / 'privkey.pem'} does not match "
        f"the certificate in {live / 'fullchain.pem'}",
        "the key and the certificate come from different issuances: renew it with "
        f"certbot renew --cert-name {HOST} --force-renewal, and check its timer",
        "cert.key-mismatch",
    )


def test_chain_with_the_intermediate_first(tmp_path, key):
    leaf, ca = issue(key)
    source = files(tmp_path, chain_pem(ca, leaf), key_pem(key))
    expect(
        source,
        f"certificate 'mail.example.com': {source.fullchain} has the server's certificate "
        "at position 2, not first",
        "put the server's own certificate first, then the intermediates it was issued by",
        "cert.chain-order",
    )


def test_expired_certificate(tmp_path, key):
    source = acme_sh(tmp_path, key, not_after=datetime(2021, 3, 4, 10, 30, tzinfo=UTC))
    expect(
        source,
        f"certificate 'mail.example.com': {tmp_path}/.acme.sh/{HOST}/fullchain.cer "
        "expired on 2021-03-04 10:30 UTC",
        f"renew it with acme.sh --renew -d {HOST} --force, and check its cron job",
        "cert.expired",
    )


def test_expiry_is_judged_at_the_given_time(tmp_path, key):
    source = good_files(tmp_path, key)
    expect(
        source,
        f"certificate 'mail.example.com': {source.fullchain} expired on 2099-01-01 12:00 UTC",
        f"install a renewed certificate and its key at {source.fullchain} and {source.key}",
        "cert.expired",
        now=NOT_AFTER,
    )
    assert load(source, now=NOT_AFTER - timedelta(seconds=1)).not_after == NOT_AFTER


# --- problems -------------------------------------------------------------------------------


def test_problems_of_an_error_are_placed_at_the_manifest_entry(tmp_path, key):
    source = CertificateSource(HOST, "files", None, str(tmp_path / "c"), str(tmp_path / "k"), LINE)
    with pytest.raises(CertificateError) as caught:
        load(source)

    assert certificate_problems(source, caught.value, HOST) == [
        Problem(
            "gitops-mail.yaml",
            LINE,
            "cert.missing",
            f"certificate 'mail.example.com': fullchain file {tmp_path / 'c'} does not exist",
            f"install the fullchain file there, or fix the files entry {AT}",
        )
    ]


def test_no_problems_for_a_good_certificate(tmp_path, key):
    source = good_files(tmp_path, key)
    material = load(source)

    assert certificate_problems(source, material, HOST) == []
    assert certificate_problems(source, material, None, now=NOT_AFTER - timedelta(days=15)) == []


SOON = Severity.WARNING, "cert.expires-soon"


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        (timedelta(days=14), (*SOON, "expires in 14 days, on")),
        (timedelta(days=1, hours=2), (*SOON, "expires in 1 day, on")),
        (timedelta(hours=3), (*SOON, "expires in less than a day, on")),
        (timedelta(0), (Severity.ERROR, "cert.expired", "expired on")),
        (timedelta(days=-3), (Severity.ERROR, "cert.expired", "expired on")),
    ],
)
def test_expiry_problems(tmp_path, key, left, expected):
    severity, code, message = expected
    source = acme_sh(tmp_path, key, directory=f"{HOST}_ecc")
    material = load(source)

    problems = certificate_problems(source, material, None, now=NOT_AFTER - left)

    assert problems == [
        Problem(
            "gitops-mail.yaml",
            LINE,
            code,
            f"certificate 'mail.example.com' {message} 2099-01-01 12:00 UTC",
            f"renew it with acme.sh --renew -d {HOST} --ecc --force, and check its cron job",
            severity,
        )
    ]


def test_hostname_not_covered(tmp_path, key):
    leaf, ca = issue(key, names=("smtp.example.com", "*.mail.example.com"))
    source = files(tmp_path, chain_pem(leaf, ca), key_pem(key))
    material = load(source)

    assert certificate_problems(source, material, "MAIL.example.com.") == [
        Problem(
            "gitops-mail.yaml",
            LINE,
            "cert.hostname",
            "certificate 'mail.example.com' does not cover the hostname 'MAIL.example.com.': "
            "it names smtp.example.com, *.mail.example.com",
            "issue the certificate for MAIL.example.com. too: clients check the hostname "
            "against it",
            Severity.WARNING,
        )
    ]


def test_certificate_without_subject_alt_name(tmp_path, key):
    leaf, ca = issue(key, names=())
    source = files(tmp_path, chain_pem(leaf, ca), key_pem(key))
    material = load(source)

    assert material.names == ()
    [problem] = certificate_problems(source, material, HOST)
    assert problem.message == (
        "certificate 'mail.example.com' does not cover the hostname 'mail.example.com': "
        "it names no DNS names"
    )


@pytest.mark.parametrize(
    ("names", "hostname", "covered"),
    [
        (["mail.example.com"], "mail.example.com", True),
        (["Mail.Example.com"], "mail.example.COM.", True),
        (["*.example.com"], "mail.example.com", True),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "a.mail.example.com", False),
        (["*.example.com"], ".example.com", False),
        (["*.com"], "com", False),
        (["m*.example.com"], "mail.example.com", False),
        (["example.com", "*.example.org"], "mx.example.org", True),
        ([], "mail.example.com", False),
    ],
)
def test_covers(names, hostname, covered):
    assert covers(names, hostname) is covered


# --- fuzz -----------------------------------------------------------------------------------


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chain=st.one_of(
        st.binary(max_size=300), st.sampled_from([b"", b"-----BEGIN CERTIFICATE-----"])
    ),
    key_bytes=st.binary(max_size=300),
)
def test_any_bytes_give_a_certificate_error_or_material(tmp_path, chain, key_bytes):
    source = files(tmp_path, chain, key_bytes)
    try:
        load(source)
    except CertificateError as exc:
        assert exc.code in {"cert.unreadable", "cert.not-pem", "cert.bad-key"}
        assert exc.message.startswith("certificate 'mail.example.com': ")
