"""Run every check of a state and return the problems, sorted; the warnings the
manifest accepts (``accept:``) come back as accepted.

``policy`` is the host's (``HostSettings.policy``) where a host decides (the
pre-receive hook, ``apply``, the daemon): what it refuses is an error. ``None``
is no host (a checkout, CI): what a host must allow is told as notes.
"""

from __future__ import annotations

from gitops_mail.core.checks import cross, dkim, layout, senders
from gitops_mail.core.checks import policy as hostpolicy
from gitops_mail.core.checks.aliases import check_aliases
from gitops_mail.core.checks.conf import check_config
from gitops_mail.core.checks.users import check_users
from gitops_mail.core.manifest.accept import acceptances, settled
from gitops_mail.core.policy import HostPolicy
from gitops_mail.core.problems import Problem, sorted_problems
from gitops_mail.core.snapshot import MANIFEST
from gitops_mail.core.state import CONF_PATH, State


def validate(state: State, *, policy: HostPolicy | None) -> list[Problem]:
    """Parse problems, then every check, then the host's ``policy``; sorted by path and
    line, duplicates removed."""
    version = state.chasquid_version
    found: list[Problem] = list(state.problems)
    found += layout.check_layout(state)
    if state.config is not None:
        found += check_config(state.config, CONF_PATH, chasquid_version=version)
    for domain in state.domains.values():
        if domain.users is not None:
            found += check_users(
                domain.users, domain.users_path, domain.name, chasquid_version=version
            )
    files = {
        name: (d.aliases_path, d.aliases)
        for name, d in state.domains.items()
        if d.aliases is not None
    }
    found += check_aliases(state.resolver, files, allow_pipes=_pipes_allowed(state))
    found += cross.check_cross(state)
    if state.manifest is not None:
        found += senders.check_senders(state.manifest) + dkim.check_dkim(state, state.manifest)
    found += hostpolicy.policy_problems(state, policy)
    if state.manifest is not None:  # warnings the repo accepts, and entries gone stale
        found = settled(found, acceptances(state.manifest.doc, MANIFEST), MANIFEST)
    return sorted_problems(found)


def _pipes_allowed(state: State) -> bool:
    """What the manifest says (the host's policy is judged on its own); a manifest
    that does not parse reports its own errors."""
    if state.manifest is not None:
        return state.manifest.allow_pipe_aliases
    return state.snapshot.data(MANIFEST) is not None
