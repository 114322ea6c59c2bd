"""The venv's site-packages, installed and compiled here once for every host.

pip on the host, for a new venv, reads 32 wheels, unpacks them and compiles
every ``.py``: seconds of CPU paid again by each host, and the hosts of a
parallel deploy may share CPUs (virtual machines on one server, the
benchmark's pretend hosts). For a host with this machine's Python and
architecture (the wheels are this machine's, repacked) pip runs here
instead, once per wheelhouse (``pip install --target``, no index, no
resolving: the wheelhouse is the closure), the bytecode is compiled here, and
the host unpacks one archive into its venv: ``site-<key>.tar.gz``, cached
beside the wheels.

The ``.pyc`` files are checked-hash (PEP 552): Python uses one only while its
source has the hash it was compiled from, whatever the file times. Paths in
them (tracebacks) name the default venv's site-packages. The console script
is written on the host, where the venv's path is known (``script``).
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import sys
import tarfile
from pathlib import Path

from gitops_mail.host import procs

SITE = "/opt/gitops-mail/venv/lib/python{version}/site-packages"
ENTRY = ("gitops_mail.cli.main", "console_main")  # pyproject's [project.scripts]


def build(out: Path, wheels: list[Path], version: str, key: str) -> str:
    """Write the archive into ``out``; its file name."""
    site = out / "site"
    argv: list[str | Path] = [sys.executable, "-m", "pip", "install", "--isolated", "--quiet"]
    argv += ["--no-index", "--no-deps", "--no-compile", "--target", site, *wheels]
    procs.run(argv, timeout=900)
    shutil.rmtree(site / "bin", ignore_errors=True)  # scripts name this machine's Python
    compileall.compile_dir(
        site,
        ddir=SITE.format(version=version),
        quiet=2,
        workers=1,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )
    name = f"site-{key}.tar.gz"
    with tarfile.open(out / name, mode="w:gz", compresslevel=6) as archive:
        archive.add(site, arcname=".", filter=_as_root)
    shutil.rmtree(site)
    return name


def _as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def script(python: str) -> str:
    """The venv's ``bin/gitops-mail``, as pip writes a console script."""
    module, function = ENTRY
    return (
        f"#!{python}\nimport sys\nfrom {module} import {function}\n"
        f"if __name__ == '__main__':\n    sys.exit({function}())\n"
    )
