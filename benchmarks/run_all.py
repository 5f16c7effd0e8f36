"""`make bench`: every benchmark at a size that finishes in minutes on a laptop CPU.

Each prints its own JSON/table; the full-size commands behind benchmarks/RESULTS.md are listed
there (pass --full here to run those instead: 1M-vector retrieval, 100k x 10k k-NN, ViT-B
extraction; allow about an hour on 2 cores).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = [
    ["extract_overhead.py", "--backbone", "tiny", "--videos", "6"],
    ["backbones.py", "--backbones", "tiny", "rhobyol", "--clips", "1", "--batch-size", "1", "--repeats", "1"],
    ["train_throughput.py", "--steps", "3", "--warmup-steps", "1"],
    ["probe.py", "--quick"],
    ["retrieval.py", "--quick"],
]
FULL = [
    ["extract_overhead.py", "--backbone", "videomae-b", "--videos", "2", "--batch-size", "15"],
    ["backbones.py", "--clips", "1", "--batch-size", "1", "--repeats", "1"],
    ["train_throughput.py", "--steps", "8", "--warmup-steps", "2", "--compile"],
    ["probe.py"],
    ["retrieval.py"],
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full-size runs recorded in RESULTS.md")
    args = ap.parse_args()
    failed = []
    for cmd in FULL if args.full else QUICK:
        print(f"\n=== {' '.join(cmd)}", flush=True)
        t0 = time.perf_counter()
        if subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]]).returncode != 0:
            failed.append(cmd[0])
        print(f"=== {cmd[0]} took {time.perf_counter() - t0:.0f} s", flush=True)
    if failed:
        sys.exit(f"benchmarks failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
