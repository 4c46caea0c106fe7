#!/usr/bin/env bash
# Makes the Debian base images deploy/Dockerfile starts from (debian:bookworm and
# debian:bookworm-slim) without a registry: debootstrap a minimal bookworm from the Debian
# archive this machine's apt already uses, then `podman import` it under both names.
# Idempotent: images that exist are kept; the root file system is cached as a tarball, so a
# second machine state (images removed, cache kept) imports in seconds.
#
# Usage: deploy/podman/base_images.sh [--cache=DIR] [--mirror=URL] [--force]
#   --cache=DIR    where the tarball is kept (default build/containers)
#   --mirror=URL   Debian archive (default: the first deb.debian.org-style URI apt uses here)
#   --force        debootstrap again even if the images and the tarball exist
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=build/containers
mirror=""
force=0
for arg in "$@"; do
  case "$arg" in
    --cache=*) cache=${arg#--cache=} ;;
    --mirror=*) mirror=${arg#--mirror=} ;;
    --force) force=1 ;;
    --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "base_images.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

have_image() { podman image exists "$1"; }
if ((!force)) && have_image debian:bookworm && have_image debian:bookworm-slim; then
  echo "base_images: debian:bookworm and debian:bookworm-slim exist"
  exit 0
fi

# The archive apt uses here: the first "URIs:" of a deb822 source for the main archive, or the
# first classic "deb URL bookworm" line.
if [[ -z "$mirror" ]]; then
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}')
fi
if [[ -z "$mirror" ]]; then
  mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache"
tarball=$cache/bookworm-minbase.tar
if ((force)) || [[ ! -s "$tarball" ]]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base_images: debootstrap --variant=minbase bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # Point apt at the same archive, with the point-release and security updates the host gets,
  # and keep the image small: no package lists, no apt cache.
  security=${mirror%/debian}/debian-security
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

# One root file system under both names: the Dockerfile's build stage adds its compilers with
# apt, and its runtime stage adds only shared libraries, so neither needs Docker Hub's variants.
id=$(podman import --quiet "$tarball" debian:bookworm)
podman tag "$id" debian:bookworm-slim
echo "base_images: debian:bookworm and debian:bookworm-slim = $(cut -c1-12 <<<"${id#sha256:}") ($(du -h "$tarball" | cut -f1) tarball)"
