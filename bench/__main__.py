"""Run the benchmarks and print medians: ``python -m bench [SUITE ...] [--runs N]``.

Every figure is the median of several runs of a fresh ``gitops-mail``
process, measured in one sitting on this machine, with the peak RSS of the
child from ``wait4``. Results also go to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bench import apply, certs, check, core, daemon, deploy

SUITES: dict[str, Callable[[argparse.Namespace], dict[str, object]]] = {
    "core": lambda args: core.run(args.runs),
    "apply": lambda args: apply.run(args.runs),
    "daemon": lambda args: daemon.run(args.pushes, args.reconciles, args.idle_seconds),
    "check": lambda args: check.run(args.runs),
    "deploy": lambda args: deploy.run(args.runs),
    "certs": lambda args: certs.run(args.renewals),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--pushes", type=int, default=daemon.PUSHES, help="daemon: timed pushes")
    parser.add_argument(
        "--reconciles", type=int, default=daemon.RECONCILES, help="daemon: for the RSS growth"
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=daemon.IDLE_S, help="daemon: idle CPU window"
    )
    parser.add_argument(
        "--renewals", type=int, default=certs.RENEWALS, help="certs: timed renewals"
    )
    args = parser.parse_args(argv)
    if os.environ.get("GITOPS_MAIL_NETNS") != "1":
        # chasquid runs in the apply and daemon suites: keep everything inside the private netns.
        root = Path(__file__).resolve().parent.parent
        netns = [str(root / "scripts" / "netns-run"), sys.executable, "-m", "bench"]
        os.execv(netns[0], [*netns, *(argv if argv is not None else sys.argv[1:])])  # noqa: S606
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite {sorted(unknown)[0]!r}; choose from {', '.join(SUITES)}")
    for name in args.suites or list(SUITES):
        results = SUITES[name](args)
        (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        rows = results["rows"]
        assert isinstance(rows, list)
        for row in rows:
            if "median_ms" not in row:
                print(f"{name:6} {row['what']:58} {row['summary']}   target {row['target']}")
                continue
            p95 = f"   p95 {row['p95_ms']:8.1f} ms" if "p95_ms" in row else ""
            print(
                f"{name:6} {row['what']:58} median {row['median_ms']:8.1f} ms{p95}   "
                + (f"peak RSS {row['peak_rss_mb']:6.1f} MB   " if "peak_rss_mb" in row else "")
                + f"target {row['target']}"
            )
            for key, label in (("phases_ms", "phases"), ("reconcile_phases_ms", "reconcile")):
                if key in row:
                    phases = ", ".join(f"{k} {v:.0f}" for k, v in row[key].items())
                    print(f"{'':6}   {label} (ms, median): {phases}")
            if "cpu" in row:
                print(f"{'':6}   CPU: {row['cpu']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
