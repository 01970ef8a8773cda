"""Maintenance commands: ``archive run|verify|restore`` (cold storage) and ``audit`` (replay). They print
what ops/ returns; exit 0 when all is well, 1 when something is wrong (each thing one line), 2 bad input."""
from __future__ import annotations

import json
import sys

from cli.operator import EXIT_BAD_INPUT, err
from ops import archive as ops_archive

EXIT_PROBLEMS = 1


def archive_command(config, args) -> int:
    """run / verify / restore (run.py has checked that the config has an [archive] table)."""
    if args.archive_command == "run":
        outcome = ops_archive.run(config)
        print(f"archived {outcome.archived} orders into {outcome.segments} segments under "
              f"{config.archive.directory}")
        for order_id in outcome.changed:
            print(f"order {order_id}: changed while being archived; stays hot until the next run")
        print(json.dumps(ops_archive.status(config), sort_keys=True), file=sys.stderr)
        return 0
    if args.archive_command == "verify":
        outcome = ops_archive.verify(config)
        for line in outcome.problems:
            print(f"problem: {line}")
        for line in outcome.notes:
            print(f"note: {line}")
        print(f"{outcome.segments} segments, {outcome.orders} archived orders checked: "
              + (f"{len(outcome.problems)} problems" if outcome.problems else "all sha256 match, none also hot"))
        return EXIT_PROBLEMS if outcome.problems else 0
    if not args.all and not args.order:
        err("restore needs --order ID (repeatable) or --all")
        return EXIT_BAD_INPUT
    outcome = ops_archive.restore(config, None if args.all else args.order)
    for line in outcome.problems:
        print(f"problem: {line}")
    print(f"restored {len(outcome.restored)} orders to the hot tables"
          + (f"; {outcome.files_removed} emptied segment files removed" if outcome.files_removed else ""))
    return EXIT_PROBLEMS if outcome.problems else 0


def audit_command(config, args) -> int:
    """Replay every order (or --order ID) from its raw snapshots: each difference one line; exit 1 if any."""
    from ops import audit

    if args.order:
        problem = audit.order_problem(args.order)
        if problem:
            err(problem)
            return EXIT_BAD_INPUT
    outcome = audit.run(config, args.order)
    for line in outcome.differences:
        print(line)
    print(f"{outcome.orders} orders replayed from their raw snapshots: "
          + (f"{len(outcome.differences)} differences" if outcome.differences else "no differences"))
    return EXIT_PROBLEMS if outcome.differences else 0
