"""The wheels a host's venv is made from, built here and cached, so the host needs no index.

Two parts, cached apart under ``$XDG_CACHE_HOME/gitops-mail/wheelhouse``:
gitops-mail's own wheel (``pip wheel`` of the source tree this command runs
from, keyed by a digest of its files) and its dependencies' wheels (keyed by
the installed versions and the host's Python and machine). For a host with
this machine's Python and architecture the dependencies are the ones
installed here, repacked as wheels (``repack``: no index needed, the versions
tested here); for another, ``pip download --only-binary=:all:`` fetches the
wheels made for it. The host never asks an index.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import gitops_mail
from gitops_mail.core.deploy.plan import Wheelhouse
from gitops_mail.core.deploy.steps import Content
from gitops_mail.errors import GitopsMailError
from gitops_mail.host import procs
from gitops_mail.host.remote import repack, sitepack

PROJECT = "gitops-mail"
SOURCE = Path(gitops_mail.__file__).resolve().parent.parent
# glibc of Debian 12 is 2.36, of Ubuntu 22.04 2.35: wheels up to manylinux_2_34 run on both.
MANYLINUX = ("manylinux_2_34", "manylinux_2_28", "manylinux_2_17", "manylinux2014")


class WheelError(GitopsMailError):
    """The wheels for a host could not be made here."""


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "gitops-mail" / "wheelhouse"


def wheelhouse(python: str, machine: str, cache: Path | None = None) -> Wheelhouse:
    """The wheels for a host whose venv runs Python ``python`` ("3.11") on ``machine``."""
    cache = cache or cache_dir()
    project = _cached(cache / f"project-{_source_digest()}", _build_project)
    requirements = _requirements()
    installed = [f"{d.metadata['Name']}=={d.version}" for d in _installed()]
    parts = [python, machine, *requirements, *installed]
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    deps = _cached(
        cache / f"deps-{python}-{machine}-{key}", lambda d: _deps(d, python, machine, requirements)
    )
    files = sorted({p.name: p for p in [*deps.glob("*.whl"), *project.glob("*.whl")]}.items())
    own = [name for name, _ in files if name.startswith("gitops_mail-")]
    pip = [name for name, _ in files if name.startswith("pip-")]
    if not pip:
        raise WheelError(
            "the wheelhouse has no wheel of pip", "install pip here (python -m ensurepip)"
        )
    contents = tuple((name, _content(path)) for name, path in files)
    listing = "".join(f"{name} {content.sha256}\n" for name, content in contents)
    digest = hashlib.sha256(listing.encode()).hexdigest()
    if (python, machine) != (_here(), platform.machine()):
        return Wheelhouse(contents, own[0], digest, pip[0])
    paths = [path for name, path in files if not name.startswith("pip-")]  # the venv has no pip

    def build(out: Path) -> None:
        sitepack.build(out, paths, python, digest[:16])

    archive = next(_cached(cache / f"site-{digest[:16]}", build).glob("site-*.tar.gz"))
    site = ((archive.name, _content(archive)),)  # installed here once: the host unpacks it
    script = sitepack.script("{python}")
    return Wheelhouse(site, own[0], digest, pip[0], site=archive.name, script=script)


def _here() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _installed() -> list[importlib.metadata.Distribution]:
    """gitops-mail's dependencies as installed here, and pip: the host's venv is made
    without pip (``ensurepip`` costs seconds of CPU) and installed by pip run from its wheel."""
    return [*repack.closure(PROJECT), importlib.metadata.distribution("pip")]


def _content(path: Path) -> Content:
    data = path.read_bytes()
    return Content(hashlib.sha256(data).hexdigest(), len(data), source=str(path))


def _cached(final: Path, build: Callable[[Path], None]) -> Path:
    """``final`` if it was built before; else built in a temporary sibling, then renamed."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=final.name + ".", dir=final.parent))
    try:
        build(work)
        os.rename(work, final)
    except OSError:
        if not final.is_dir():
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _source_digest() -> str:
    """Of every file of the source tree that goes into the wheel."""
    if not (SOURCE / "pyproject.toml").is_file():
        raise WheelError(
            f"gitops-mail runs from {SOURCE}, not from a source tree: there is nothing to build "
            "its wheel from",
            "run deploy from a clone of gitops-mail (pip install -e .)",
        )
    digest = hashlib.sha256()
    top = [SOURCE / "pyproject.toml", SOURCE / "README.md"]
    for path in top + sorted(_package_files(SOURCE / "gitops_mail")):
        digest.update(str(path.relative_to(SOURCE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _package_files(root: Path) -> list[Path]:
    found = []
    for where, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [Path(where) / n for n in names if not n.endswith(".pyc")]
    return found


def _build_project(out: Path) -> None:
    """``pip wheel`` of the source tree; with this environment's setuptools when it can
    (no index needed: the dev extra brings one), else in pip's isolated build environment."""
    pip: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
    if _has_setuptools((70, 1)):
        pip.append("--no-build-isolation")
    _pip([*pip, "--wheel-dir", out, SOURCE], "building gitops-mail's wheel")


def _has_setuptools(least: tuple[int, int]) -> bool:
    """setuptools from 70.1 builds wheels without the ``wheel`` package."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:2]]
    return tuple(parts) >= least


def _requirements() -> list[str]:
    found = importlib.metadata.requires(PROJECT) or []
    return sorted(r for r in found if "extra ==" not in r)


def _deps(out: Path, python: str, machine: str, requirements: list[str]) -> None:
    """Same Python and machine as here: the installed dependencies, repacked (no index).
    Another: ``pip download`` of the wheels made for that host (the index is asked here)."""
    if (python, machine) == (_here(), platform.machine()):
        for dist in _installed():
            repack.repack(dist, out)
        return
    argv: list[str | Path] = [sys.executable, "-m", "pip", "download", "--only-binary=:all:"]
    argv += ["--dest", out, "--python-version", python, "--implementation", "cp"]
    for tag in MANYLINUX:
        argv += ["--platform", f"{tag}_{machine}"]
    _pip(
        [*argv, "--quiet", "pip", *requirements],
        f"getting the wheels for Python {python} on {machine}",
    )


def _pip(argv: list[str | Path], what: str) -> None:
    try:
        procs.run(argv, timeout=900)
    except GitopsMailError as exc:
        raise WheelError(
            f"{what} failed: {exc.message}",
            "pip needs its index (or a --find-links directory) here, on this machine",
        ) from exc
