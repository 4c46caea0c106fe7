#!/usr/bin/python3
"""Turns `moectl generate --embedded --routing` output into the browser test's expectations.

stdin: rows like `    4 G ' to'   L0 1:0.82 7:0.18 | L1 4:0.69 1:0.31 | L2 3:0.60 1:0.40`
stdout: {"prompt": PROMPT, "max_tokens": N, "seed": S, "tokens": [{"position", "layers"}]}
Expert ids are base experts (the page's data-expert): "3.1" (expert.micro) counts as 3.
"""
import json
import re
import sys


def main():
    prompt, max_tokens, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tokens = []
    for line in sys.stdin:
        m = re.match(r"\s*(\d+) ([PG]) .*? (L0 .*)$", line.rstrip("\n"))
        if not m:
            continue
        layers = []
        for part in m.group(3).split("|"):
            ids = re.findall(r"(\d+)(?:\.\d+)?:\d", part.split(None, 1)[1])
            layers.append([int(i) for i in ids])
        tokens.append({"position": int(m.group(1)), "layers": layers})
    if not tokens:
        sys.exit("routing_to_expected: no routing rows on stdin")
    json.dump({"prompt": prompt, "max_tokens": max_tokens, "seed": seed, "tokens": tokens},
              sys.stdout)


if __name__ == "__main__":
    main()
