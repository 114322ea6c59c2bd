#!/usr/bin/python3
"""chasquid post-data hook managed by gitops-mail: DKIM-signs authenticated mail.

Do not edit: gitops-mail renders this file from gitops-mail.yaml (each
domain's dkim.selectors) and replaces it on every apply. chasquid < 1.14 has
no DKIM of its own; it runs this for every message, in its config dir, with
the message on standard input, and puts what it prints in front of the
message.

Mail from a logged-in user (AUTH_AS set) whose envelope sender's domain has
selectors is signed once per selector, with domains/<domain>/dkim:<selector>.pem.
When the repo has its own post-data hook (installed as post-data.repo), it
runs first, on the same message: its refusal (exit code and output) is
chasquid's answer, and the headers it adds are signed too. A key that cannot
be used leaves the message unsigned, never refused: mail keeps flowing.

Runs with Debian's python3 and python3-dkim (dkimpy).
"""

import base64
import os
import subprocess
import sys

# domain (lower case, Unicode and A-label) -> [directory, d= (A-label), [selectors]]
SIGNERS: dict[str, list] = {}  # type: ignore[type-arg]
REPO_HOOK = ""  # "hooks/post-data.repo" when the repo has its own post-data hook

ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")


def main() -> int:
    message = sys.stdin.buffer.read()
    added = b""
    if REPO_HOOK:
        done = subprocess.run([REPO_HOOK], input=message, stdout=subprocess.PIPE, check=False)
        if done.returncode != 0:
            sys.stdout.buffer.write(done.stdout)
            return done.returncode
        added = done.stdout
    sys.stdout.buffer.write(added + signatures(added + message))
    return 0


def signatures(message: bytes) -> bytes:
    if not os.environ.get("AUTH_AS"):
        return b""
    domain = os.environ.get("MAIL_FROM", "").rpartition("@")[2].lower()
    signer = SIGNERS.get(domain)
    if signer is None:
        return b""
    directory, d, selectors = signer
    headers = b""
    for selector in selectors:
        try:
            headers += sign(message, f"domains/{directory}/dkim:{selector}.pem", selector, d)
        except Exception as exc:  # unsigned beats refused
            reason = type(exc).__name__  # never the exception's text: it could quote the key
            print(f"gitops-mail dkim: {d} {selector}: not signed ({reason})", file=sys.stderr)
    return headers


def sign(message: bytes, path: str, selector: str, d: str) -> bytes:
    import dkim  # noqa: PLC0415 - only mail that is signed pays for it

    with open(path, "rb") as handle:
        pem = handle.read()
    der = base64.b64decode(b"".join(pem.split(b"\n")[1:-2]))
    algorithm, key = b"rsa-sha256", pem
    if der.startswith(ED25519_PKCS8) and len(der) == len(ED25519_PKCS8) + 32:
        algorithm, key = b"ed25519-sha256", base64.b64encode(der[len(ED25519_PKCS8) :])
    signed: bytes = dkim.sign(
        message,
        selector.encode("ascii"),
        d.encode("ascii"),
        key,
        canonicalize=(b"relaxed", b"relaxed"),
        signature_algorithm=algorithm,
        linesep=b"\n",
    )
    return signed


if __name__ == "__main__":
    sys.exit(main())
