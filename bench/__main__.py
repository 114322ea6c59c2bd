"""Run the benchmarks and print medians: ``python -m bench [core] [--runs N]``.

Every figure is the median of several runs of a fresh ``gitops-mail``
process, measured in one sitting on this machine, with the peak RSS of the
child from ``wait4``. Results also go to ``bench/results/<name>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench import apply, core

SUITES = {"core": core.run, "apply": apply.run}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"one of {', '.join(SUITES)}")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if os.environ.get("GITOPS_MAIL_NETNS") != "1":
        # chasquid runs in the apply suite: keep everything inside the private netns.
        root = Path(__file__).resolve().parent.parent
        netns = [str(root / "scripts" / "netns-run"), sys.executable, "-m", "bench"]
        os.execv(netns[0], [*netns, *(argv if argv is not None else sys.argv[1:])])  # noqa: S606
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    unknown = set(args.suites) - set(SUITES)
    if unknown:
        parser.error(f"unknown suite {sorted(unknown)[0]!r}; choose from {', '.join(SUITES)}")
    for name in args.suites or list(SUITES):
        results = SUITES[name](args.runs)
        (out_dir / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
        for row in results["rows"]:
            print(
                f"{name:6} {row['what']:58} median {row['median_ms']:8.1f} ms   "
                f"peak RSS {row['peak_rss_mb']:6.1f} MB   target {row['target']}"
            )
            if "phases_ms" in row:
                phases = ", ".join(f"{k} {v:.0f}" for k, v in row["phases_ms"].items())
                print(f"{'':6} {'  phases (ms, median): ' + phases}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
