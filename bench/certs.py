"""Certificate renewal benchmark: renewed files landing -> the new certificate served.

The daemon suite's sandbox (``bench/daemon.py``: the example conf, a bare
repo, chasquid under ``gitops-mail supervise``, ``gitops-mail daemon``
watching) with its ``files:`` certificate source. Each renewal writes a new
key and then a new chain over the source files, as acme.sh does; the time is
from the start of the first write to chasquid presenting the new leaf on 465
(TLS on connect, compared by SHA-256). Split with the daemon's
``renewal.start`` event (the settle wait and the queue) and the renewal's
phases from ``history``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.apply import _supervised
from bench.daemon import Box, _daemon, _recorded_phases, _sandbox, _settled
from bench.harness import for_chasquid, ms_row, poll

RENEWALS = 10
TLS_PORT = 2465  # bench.apply.CONF
SERVED_DEADLINE_S = 20.0


def _issue(where: Path, i: int) -> tuple[bytes, bytes, str]:
    """A new self-signed leaf for mail.example.com: (chain, key, SHA-256 of its DER)."""
    key, chain = where / f"key{i}.pem", where / f"chain{i}.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "30", "-subj", "/CN=mail.example.com"),
            *("-addext", "subjectAltName=DNS:mail.example.com,IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(chain)),
        ],
        check=True,
        capture_output=True,
    )
    der = ssl.PEM_cert_to_DER_cert(chain.read_text())
    return chain.read_bytes(), key.read_bytes(), hashlib.sha256(der).hexdigest()


def _served() -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with (
            socket.create_connection(("127.0.0.1", TLS_PORT), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            return hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
    except OSError:
        return ""


def _renewal_starts(box: Box) -> list[float]:
    found = []
    for line in (box.root / "daemon.log").read_text().splitlines():
        if line.startswith("{") and "renewal.start" in line:
            event = json.loads(line)
            found.append(datetime.fromisoformat(event["timestamp"]).timestamp())
    return found


def _one_renewal(box: Box, i: int) -> dict[str, float]:
    chain, key, fingerprint = _issue(box.root, i)
    seen = len(_renewal_starts(box))
    started, clock = time.time(), time.perf_counter()
    (box.root / "certs" / "privkey.pem").write_bytes(key)
    (box.root / "certs" / "fullchain.pem").write_bytes(chain)
    poll(lambda: _served() == fingerprint, SERVED_DEADLINE_S, f"renewal {i} served", 0.002)
    served = time.perf_counter() - clock
    start = _renewal_starts(box)[seen]
    return {
        "served": served,
        "to_pass": start - started,
        "pass_to_served": served - (start - started),
    }


def run(renewals: int = RENEWALS) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for_chasquid(root, root)
        box = _sandbox(root)
        with _supervised(box.host), _daemon(box):
            poll(lambda: _settled(box), 60, "the daemon's first pass")
            samples = []
            for i in range(renewals + 1):  # the first warms the page cache
                samples.append(_one_renewal(box, i))
                poll(lambda: _settled(box), 30, "the daemon to settle")
            samples = samples[1:]
            served = ms_row(
                "renewed files land -> new certificate served on 465",
                "p50 <= 1000 ms",
                [s["served"] for s in samples],
            )
            served["phases_ms"] = {
                key: statistics.median(s[key] for s in samples) * 1000
                for key in ("to_pass", "pass_to_served")
            }
            served["reconcile_phases_ms"] = _recorded_phases(box, renewals)
    return {"suite": "certs", "rows": [served]}
