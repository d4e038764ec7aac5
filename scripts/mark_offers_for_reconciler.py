"""Mark for the reconciler every offer that still needs it, on a stack deployed before the reconciler read
its indexes (Offers index `Watched`): such a stack's offers carry no mark, and a run reads only marked ones.

    python scripts/mark_offers_for_reconciler.py [--name-prefix P] [--endpoint-url URL] [--dry-run]

Run it once the stack update has finished (the indexes exist, and every function and state machine writes
the marks). It reads the Offers table once (a consistent scan) and marks, unless already marked:
- an enrolled offer whose eventual workflow is not confirmed, or whose first payment is recorded as not
  started;
- a `cancelling` offer;
- a `failed` or `cancelled` offer with an action still waiting or running.
The reconciler then repairs each one and removes its mark once it is settled. Running it again marks
nothing new.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src/layers/common"), str(ROOT / "src/enrollment")]

from enrollment import store  # noqa: E402
from enrollment.store import Tables  # noqa: E402


def needs_the_reconciler(tables: Tables, offer: dict[str, Any]) -> bool:
    status = offer.get("status")
    if status == store.ENROLLED:
        confirmed = (offer.get("eventualWorkflow") or {}).get("confirmedAt")
        return not confirmed or "firstPaymentNotStarted" in offer
    if status == store.CANCELLING:
        return True
    if status in (store.FAILED, store.CANCELLED):
        actions = store.contract_actions(tables, offer["OfferId"]).values()
        return any(action["state"] not in store.ACTION_DONE for action in actions)
    return False


def mark(tables: Tables, at: datetime, dry_run: bool = False) -> dict[str, list[str]]:
    """The offers marked now, and those that needed it but were marked already."""
    marked: list[str] = []
    already: list[str] = []
    for offer in store.every_offer(tables):
        if not needs_the_reconciler(tables, offer):
            continue
        if offer.get(store.WATCHED_SINCE) or (not dry_run and not store.watch_offer(tables, offer["OfferId"], at)):
            already.append(offer["OfferId"])
        else:
            marked.append(offer["OfferId"])
    return {"marked": marked, "alreadyMarked": already}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name-prefix", default="", help="the stack's NamePrefix parameter")
    parser.add_argument("--endpoint-url", help="the local emulator, e.g. http://localhost:4566")
    parser.add_argument("--dry-run", action="store_true", help="list the offers it would mark, mark none")
    args = parser.parse_args()
    dynamodb = boto3.resource("dynamodb", endpoint_url=args.endpoint_url)
    prefix = args.name_prefix
    tables = Tables(
        offers=dynamodb.Table(f"{prefix}Offers"),
        ucp=dynamodb.Table(f"{prefix}Ucp"),
        actions=dynamodb.Table(f"{prefix}EnrollmentActions"),
        audit=dynamodb.Table(f"{prefix}EnrollmentAudit"),
    )
    result = mark(tables, datetime.now(UTC), dry_run=args.dry_run)
    verb = "would mark" if args.dry_run else "marked"
    print(f"{verb} {len(result['marked'])} offers: {', '.join(result['marked']) or '-'}")
    print(f"already marked: {len(result['alreadyMarked'])}")


if __name__ == "__main__":
    main()
