"""``python -m grafana.dashgen [--check | --list-queries]`` (``make dashboards``)."""

from __future__ import annotations

import argparse
import sys

from . import inventory
from .generate import _GRAFANA, stale_files, write_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grafana.dashgen", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="fail if committed files are stale")
    mode.add_argument(
        "--list-queries", action="store_true", help="print every dashboard query (JSON lines)"
    )
    args = parser.parse_args(argv)
    root = _GRAFANA.parent
    if args.list_queries:
        for q in inventory.queries():
            print(q.as_json())
        return 0
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(root)} (run `make dashboards`)", file=sys.stderr)
        return 1 if stale else 0
    for path in write_all():
        print(f"wrote {path.relative_to(root)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
