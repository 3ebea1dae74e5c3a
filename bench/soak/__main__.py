"""`python -m bench.soak [--minutes 30] [--rate 2000] [--faults N]`: the soak under random
faults against the three-node cluster (started if needed; see bench/cluster.py).

Writes the report to bench/results/soak.json (or --out) and exits 1 if an event was lost
without a SIGKILL to explain it, or stored twice.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench.soak.run import ROOT, SoakSettings, run_soak

FAULT_EVERY_S = 180.0  # "every few minutes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument(
        "--faults", type=int, help="how many (default: one every 3 minutes, at least 4)"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    parser.add_argument("--keep-data", action="store_true", help="keep the schema and topics")
    args = parser.parse_args(argv)
    faults = (
        args.faults if args.faults is not None else max(4, int(args.minutes * 60 // FAULT_EVERY_S))
    )
    with tempfile.TemporaryDirectory(prefix="metrictui-soak-") as tmp:
        report = run_soak(
            SoakSettings(args.minutes, args.rate, faults, args.seed, Path(tmp), args.keep_data)
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    keys = (
        "fault_count",
        "produced",
        "stored",
        "dead_lettered",
        "lost_in_memory_at_sigkill",
        "lost_unexplained",
        "duplicates",
        "freshness",
        "ok",
    )
    print(json.dumps({k: report[k] for k in keys}), flush=True)
    print(f"wrote {args.out}", flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
