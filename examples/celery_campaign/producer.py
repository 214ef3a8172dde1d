"""Start an outbound campaign and print its report once every number was called.

    python producer.py --campaign spring-sale --from +15550100 +15550101 +15550102 ...

Enqueues one ``call_number`` task per number, with ``collect`` as the final
step (a Celery chord), and waits for collect's report. Running it again with
the same campaign name calls nobody twice: every task finds its number's
record in the ledger. ``--json`` prints the report as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from campaign import call_number, collect
from celery import chord

MESSAGE = "Hello from Acme. Our spring sale starts on Monday: everything is twenty percent off. Goodbye."


def start(campaign: str, numbers: list[str], from_number: str, message: str) -> Any:
    """Enqueue the campaign; returns the AsyncResult of its final step."""
    calls = [call_number.s(campaign, number, from_number, message) for number in dict.fromkeys(numbers)]
    return chord(calls)(collect.s(campaign))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("numbers", nargs="+", help="numbers to call (+15551234567)")
    parser.add_argument("--campaign", required=True, help="the campaign's name: its calls' tags derive from it")
    parser.add_argument("--from", dest="from_number", required=True, help="one of your numbers")
    parser.add_argument("--message", default=MESSAGE, help="what to say to those who answer")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the report (3600)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args(argv)

    report = start(args.campaign, args.numbers, args.from_number, args.message).get(timeout=args.timeout)
    if args.json:
        print(json.dumps(report), flush=True)
        return 0
    print(f"campaign {report['campaign']}:")
    for call in report["calls"]:
        print(f"  {call['number']}: {call['outcome']}")
    print(", ".join(f"{count} {outcome}" for outcome, count in sorted(report["outcomes"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
