"""After the swap: make chasquid pick the change up, prove it, or undo it.

The probe expectations come from what is on disk after the swap (hostname,
listen addresses, certificate fingerprints) and from the plan (every address
it touched must be accepted or refused as the new resolution says).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from gitops_mail import livefs
from gitops_mail.errors import GitopsMailError
from gitops_mail.formats.chasquid_conf import parse_config
from gitops_mail.hostconfig import HostSettings
from gitops_mail.plan import Action, Plan
from gitops_mail.probe import ProbeSpec, endpoints_from_config, leaf_fingerprint, probe
from gitops_mail.service import service_for
from gitops_mail.state import State
from gitops_mail.transaction import Phases

RCPT_LIMIT = 20
WAIT_RELOAD_S = 35.0  # chasquid 1.11 re-reads users and aliases every 30 s


def act_and_probe(
    settings: HostSettings, action: Action, state: State | None, plan: Plan | None, phases: Phases
) -> str | None:
    """Restart as needed and probe; None when proven, else why not."""
    deadline = settings.probe_deadline
    waiting = action is Action.RELOAD and settings.chasquid.reload_strategy == "wait"
    try:
        if action is not Action.NONE and not waiting:
            with phases.timed("restart"):
                service_for(settings).restart()
        with phases.timed("probe"):
            spec = spec_from_disk(settings.chasquid.config_dir, state, plan)
            result = probe(spec, deadline=WAIT_RELOAD_S if waiting else deadline)
    except GitopsMailError as exc:
        return exc.message
    if result.ok:
        return None
    return "probe failed: " + "; ".join(f"{c.name}: {c.detail}" for c in result.failures())


def restore(
    settings: HostSettings, live: livefs.LiveDir, checkpoint: livefs.Checkpoint, phases: Phases
) -> str:
    """Put the old tree back, restart, probe; a sentence saying how it went."""
    with phases.timed("restore"):
        live.restore(checkpoint)
    failure = act_and_probe(settings, Action.RESTART, None, None, phases)
    if failure is None:
        return "the server was restored to its previous configuration and passes its probes"
    return f"the previous configuration was restored, but the server still fails: {failure}"


def spec_from_disk(config_dir: Path, state: State | None, plan: Plan | None) -> ProbeSpec:
    conf_path = config_dir / "chasquid.conf"
    config, problems = parse_config(conf_path.read_bytes(), str(conf_path))
    if config is None or config.hostname is None:
        raise GitopsMailError(
            f"cannot probe: {conf_path} does not name a hostname",
            "; ".join(p.message for p in problems),
        )
    smtp, submission, tls = endpoints_from_config(
        config.smtp_address, config.submission_address, config.submission_over_tls_address
    )
    return ProbeSpec(
        hostname=config.hostname,
        smtp=smtp,
        submission=submission,
        submission_tls=tls,
        fingerprints=_fingerprints(config_dir),
        rcpt=_rcpt_checks(state, plan) if state is not None and plan is not None else (),
    )


def _fingerprints(config_dir: Path) -> frozenset[str]:
    chains = sorted((config_dir / "certs").glob("*/fullchain.pem"))
    return frozenset(leaf_fingerprint(p.read_bytes()) for p in chains)


def _rcpt_checks(state: State, plan: Plan) -> tuple[tuple[str, bool], ...]:
    checks: dict[str, bool] = {}
    for change in plan.changes:
        if change.area not in ("user", "alias", "catch-all"):
            continue
        address = change.subject
        if address.startswith("*@"):
            address = f"gitops-mail-probe-{secrets.token_hex(4)}{address[1:]}"
        checks[address] = state.resolver.resolve(address).exists
        if len(checks) >= RCPT_LIMIT:
            break
    return tuple(checks.items())
