"""``vectors``: record golden vectors and show what changed (make conformance-vectors).

Two sets: the checks' vectors, recorded from upstream itself where ``$HYPERSCALEES_SRC`` is set
(``make upstream`` sets it up), else from ``jax_reference`` (the document's ``recorded_with``
says which; CI, which cannot reach upstream, then checks ``jax_reference`` against upstream's own
numbers), and the PRNG vectors of ``jax.random``
itself on XLA:CPU (``conformance.prng_vectors``), which ``eggroll_torch.random`` is tested
against on machines without that JAX. Nothing is overwritten silently: every difference with the
stored vectors (library versions, added/removed/changed cases and outputs, with their largest
change) is printed first; only documents that changed are rewritten, or ``--new-version vN``
writes the checks' vectors to a new directory.
"""
from __future__ import annotations

import os

from .. import adapters, golden, prng_vectors
from ..adapters.upstream import ENV_VAR as UPSTREAM_ENV
from ..adapters.jax_api import library_versions
from ..checks import select_checks

NAME = "vectors"
HELP = "regenerate golden vectors (checks and jax.random) and print a diff summary (make conformance-vectors)"
PARTS = ("all", "checks", "prng")


def add_arguments(parser) -> None:
    parser.add_argument("--check", action="append", metavar="GLOB", help="only these checks (repeatable)")
    parser.add_argument("--vectors", metavar="DIR", help="vectors directory to compare with (default: current)")
    parser.add_argument("--new-version", metavar="vN", help="write everything to conformance/vectors/vN instead")
    parser.add_argument("--dry-run", action="store_true", help="print the differences, write nothing")
    parser.add_argument("--source", choices=("upstream", "jax_reference"),
                        help=f"backend the checks' vectors are recorded from (default: upstream when ${UPSTREAM_ENV} "
                             "is set, else jax_reference)")
    parser.add_argument("--part", choices=PARTS, default="all",
                        help="record only the checks' vectors or only the jax.random ones (default: both)")


def main(args) -> int:
    if args.part == "prng" and (args.check or args.new_version or args.vectors or args.source):
        print("--check, --vectors, --new-version and --source apply to the checks' vectors: not with --part prng")
        return 2
    status = 0 if args.part == "prng" else _record_checks(args)
    if status == 0 and args.part != "checks":
        status = _record_prng(args)
    return status


def _record_prng(args) -> int:
    try:
        _, lines = prng_vectors.record(dry_run=args.dry_run)
    except RuntimeError as e:
        print(f"cannot record the PRNG vectors: {e}")
        return 2
    for line in lines:
        print(line)
    return 0


def _record_checks(args) -> int:
    source = args.source or ("upstream" if os.environ.get(UPSTREAM_ENV) else "jax_reference")
    try:
        reference = adapters.resolve(source)
    except adapters.BackendUnavailable as e:
        print(f"cannot record vectors from {source}: {e}")
        return 2
    print(f"recording the checks' vectors from {source}")
    store = golden.VectorStore(args.vectors)
    target = golden.ROOT / args.new_version if args.new_version else store.directory
    versions = {**library_versions(), "python": golden.python_version()}
    info = reference.info()
    recorded_with = {"backend": info.name, "version": info.version, "device": info.device}
    checks = select_checks(args.check)
    changed = 0
    for check in checks:
        rows = []
        for case in check.cases("ci"):
            outputs = check.compute(reference, case)
            aux = check.aux(reference, case) if check.injectable else None
            rows.append((case, outputs, aux or {}))
        doc, arrays = golden.build_document(check, "ci", recorded_with, versions, rows)
        lines = golden.diff_document(store.document(check.id), store.entries(check.id), doc, arrays)
        if args.new_version or lines:
            changed += 1
            for line in lines:
                print(line)
            if not args.dry_run:
                golden.write_document(target, doc, arrays)
    if not args.check:
        known = {c.id for c in checks}
        for stale in sorted(set(store.check_ids()) - known):
            changed += 1
            print(f"{stale}: no such check any more")
            if not args.dry_run and not args.new_version:
                (store.directory / f"{stale}.json").unlink()
                (store.directory / f"{stale}.npz").unlink(missing_ok=True)
    verb = "would change" if args.dry_run else "changed"
    size = golden.VectorStore(target).size_bytes()
    print(f"{changed} of {len(checks)} vector documents {verb}; {target} holds {size / 1e6:.2f} MB")
    return 0
