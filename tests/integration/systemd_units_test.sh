#!/usr/bin/env bash
# The systemd units of deploy/systemd:
#   - `systemd-analyze verify` accepts each of them (the pool template as an instance), with no
#     warning: unknown keys or bad values are only warnings to systemd, so any output fails;
#   - every flag an Exec line passes to a binary is one that binary has (its --helpfull), so a
#     unit never starts a service with a flag it refuses;
#   - every variable an Exec line uses has a default in the unit or is set by the example
#     environment file, and the example sets only variables the unit uses.
#
# Usage: tests/integration/systemd_units_test.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=$(realpath "${1:?usage: systemd_units_test.sh BUILD_DIR}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0

declare -A BIN=(
  [moe-router]=services/router/moe-router
  [moe-expert-pool]=services/expert_pool/moe-expert-pool
  [moe-orchestrator]=services/orchestrator/moe-orchestrator
  [moectl]=clients/moectl/moectl
  [viewer]=clients/viewer/viewer
)
mkdir -p "$tmp/bin" "$tmp/units" "$tmp/help"
for name in "${!BIN[@]}"; do
  [[ -x "$build/${BIN[$name]}" ]] || { echo "systemd_units_test: $build/${BIN[$name]} is missing" >&2; exit 1; }
  ln -s "$build/${BIN[$name]}" "$tmp/bin/$name"
  "$build/${BIN[$name]}" --helpfull >"$tmp/help/$name" 2>&1 || true
done

# 1. systemd-analyze verify, with the binaries where the units expect them.
if command -v systemd-analyze >/dev/null; then
  for unit in deploy/systemd/*.service; do
    sed "s|/usr/local/bin/|$tmp/bin/|g" "$unit" >"$tmp/units/$(basename "$unit")"
  done
  for unit in moe-router.service moe-orchestrator.service moe-viewer.service \
    moe-expert-pool@pool-a.service; do
    if out=$(cd "$tmp/units" && systemd-analyze verify "$unit" 2>&1) && [[ -z "$out" ]]; then
      echo "ok   systemd-analyze verify $unit"
    else
      echo "FAIL systemd-analyze verify $unit"
      sed 's/^/       /' <<<"$out"
      failed=1
    fi
  done
else
  echo "skip systemd-analyze verify: systemd-analyze is not installed (apt-get install systemd)"
fi

# 2. and 3. Flags against each binary's --helpfull; variables against defaults and examples.
/usr/bin/python3 - "$tmp/help" deploy/systemd <<'PYEOF' || failed=1
import glob, os, re, sys

help_dir, unit_dir = sys.argv[1], sys.argv[2]
errors = []


def known_flags(binary):
    text = open(os.path.join(help_dir, binary), encoding="utf-8", errors="replace").read()
    # "    --name (help...": a wrapped help line is indented further and is no flag.
    flags = set(re.findall(r"^    --([A-Za-z0-9_]+) \(", text, re.M))
    if not flags:
        errors.append(f"{binary} --helpfull lists no flags:\n{text[:400]}")
    return flags


def unit_lines(path):
    """(key, value) of every setting, continuation lines joined."""
    text = open(path, encoding="utf-8").read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            yield key.strip(), value.strip()


def env_file_vars(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = not line.lstrip().startswith("#")  # True: set, False: commented out
    return out


checked = 0
for unit in sorted(glob.glob(os.path.join(unit_dir, "*.service"))):
    name = os.path.basename(unit)
    settings = list(unit_lines(unit))
    defaults = {v.split("=", 1)[0] for k, v in settings if k == "Environment"}
    env_files = [v.lstrip("-") for k, v in settings if k == "EnvironmentFile"]
    used = set()
    for key, value in settings:
        if not key.startswith("Exec"):
            continue
        # Each binary named in the line, with the flags that follow it up to a quote or the end.
        for m in re.finditer(r"/usr/local/bin/([A-Za-z0-9_-]+)([^'\"]*)", value):
            binary, args = m.group(1), m.group(2)
            if binary not in ("moe-router", "moe-expert-pool", "moe-orchestrator", "moectl", "viewer"):
                errors.append(f"{name}: {key} runs /usr/local/bin/{binary}, not a binary of this project")
                continue
            flags = known_flags(binary)
            for flag in re.findall(r"(?:^|\s)--([A-Za-z0-9_]+)", args):
                checked += 1
                if flag not in flags:
                    errors.append(f"{name}: {key} passes --{flag}, which {binary} does not have "
                                  f"(not in its --helpfull)")
        used |= set(re.findall(r"(?<!\$)\$\{?([A-Z][A-Z0-9_]*)\}?", value))
    # The example of the first (required) environment file: /etc/moe/X.env -> deploy/systemd/X.env.
    required = env_files[0] if env_files else None
    example = os.path.join(unit_dir, os.path.basename(required)) if required else None
    if not example or not os.path.exists(example):
        errors.append(f"{name}: no example {example} for EnvironmentFile={required}")
        continue
    example_vars = env_file_vars(example)
    for var in sorted(used):
        if var not in defaults and not example_vars.get(var):
            errors.append(f"{name}: ${var} has no default in the unit and is not set in {example}")
    for var in sorted(example_vars):
        if var not in used:
            errors.append(f"{example}: {var} is not used by {name}")

for e in errors:
    print("FAIL " + e)
if not errors:
    print(f"ok   {checked} flags in the units' Exec lines are in their binaries' --helpfull; "
          "every variable has a default or an example")
sys.exit(1 if errors else 0)
PYEOF

if ((failed)); then echo "systemd_units_test: FAILED"; exit 1; fi
echo "systemd_units_test: passed"
