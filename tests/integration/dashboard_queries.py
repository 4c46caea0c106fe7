#!/usr/bin/python3
"""Prints every PromQL expression of a Grafana dashboard, one per line, in panel order.

Usage: dashboard_queries.py [DASHBOARD.json]   (default: deploy/grafana/dashboards/moe-expert-load.json)

Each distinct expression is printed once. The expressions are plain PromQL (no Grafana
variables), so they can be sent to Prometheus as they are. Exits 1 if the file cannot be read,
an expression spans several lines (it could not be read back one per line), or there is none.
Standard library only.
"""
import json
import os
import sys

DEFAULT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                       "deploy", "grafana", "dashboards", "moe-expert-load.json")


def panels(items):
    """Yields every panel, including those nested in (collapsed) rows."""
    for panel in items or []:
        yield panel
        yield from panels(panel.get("panels"))


def expressions(dashboard):
    seen = []
    for panel in panels(dashboard.get("panels")):
        for target in panel.get("targets") or []:
            expr = (target.get("expr") or "").strip()
            if expr and expr not in seen:
                seen.append(expr)
    return seen


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip())
        return 0 if len(argv) == 2 else 2
    path = argv[1] if len(argv) == 2 else DEFAULT
    try:
        with open(path, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        print(f"dashboard_queries: cannot read {path}: {e}", file=sys.stderr)
        return 1
    exprs = expressions(dashboard)
    if not exprs:
        print(f"dashboard_queries: no PromQL expression in {path}", file=sys.stderr)
        return 1
    for expr in exprs:
        if "\n" in expr:
            print(f"dashboard_queries: multi-line expression: {expr!r}", file=sys.stderr)
            return 1
    for expr in exprs:
        print(expr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
