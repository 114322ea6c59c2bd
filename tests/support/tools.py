"""Tests that need an installed tool: skipped on a developer's machine without it, failed in CI.

A skip in CI would hide a missing install step (``scripts/install-deps``): under
``CI=true`` a missing tool, or an end-to-end run outside the private network
namespace, fails the test instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(*needed: str) -> list[str]:
    """What of ``needed`` is not here: program names looked up on PATH, absolute paths as files."""
    return [n for n in needed if not (os.path.exists(n) if "/" in n else shutil.which(n))]


def needs(*programs: str, why: str = "") -> pytest.MarkDecorator:
    """Skip the test where a program is missing, except in CI, where it runs and fails."""
    gone = missing(*programs)
    reason = f"needs {', '.join(gone)}" + (f" ({why})" if why else "")
    return pytest.mark.skipif(bool(gone) and not IN_CI, reason=reason)


def skip_or_fail(reason: str) -> None:
    """``pytest.skip`` on a developer's machine; ``pytest.fail`` in CI."""
    if IN_CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)
