"""Compare the final-state digests written by distributed runs; exit 1 unless all are equal.

    python scripts/dist_digests.py RUN_DIR [RUN_DIR ...] [--json summary.json]

Reads every ``*.json`` digest record (``world_size``, ``rank``, ``epoch``, ``digest``) in the
given directories (not recursively), prints one line per record and writes a summary with
``bit_identical`` true when every record has the same digest and epoch.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys


def compare(directories: list[str]) -> dict:
    """``{"records": [...], "distinct_digests": n, "bit_identical": bool}`` over the directories."""
    records = []
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
            with open(path) as handle:
                record = json.load(handle)
            if {"world_size", "rank", "epoch", "digest"} <= set(record):
                records.append({**record, "file": path})
    if not records:
        raise SystemExit(f"no digest records in {directories}; did the runs write them?")
    distinct = {(r["digest"], r["epoch"]) for r in records}
    return {"records": records, "distinct_digests": len(distinct), "bit_identical": len(distinct) == 1}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directories", nargs="+")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    summary = compare(args.directories)
    for record in summary["records"]:
        who = "single process" if record["world_size"] == 0 else f"world {record['world_size']} rank {record['rank']}"
        print(f"{who:>22}  {record.get('update', ''):>10}  epoch {record['epoch']}  {record['digest'][:16]}")
    verdict = "bit-identical" if summary["bit_identical"] else f"{summary['distinct_digests']} DIFFERENT states"
    print(f"{len(summary['records'])} runs/ranks: {verdict}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    return 0 if summary["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
