#!/usr/bin/env bash
# Makes the Debian base images deploy/Dockerfile starts from (debian:bookworm and
# debian:bookworm-slim) without a registry: debootstrap a minimal bookworm from the Debian
# archive this machine's apt already uses, then `podman import` it, and a copy without
# documentation, manual pages and translations as the slim one.
# Idempotent: images that exist are kept; the root file systems are cached as tarballs, so
# with the images removed and the cache kept they import in seconds.
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

# Each image carries a label naming what this script made it as, so that a change here (or an
# image of the same name from elsewhere) is noticed and the image made again.
made_as() {
  podman image inspect --format '{{index .Labels "moe.base"}}' "$1" 2>/dev/null || true
}
if ((!force)) && [[ "$(made_as debian:bookworm)" == minbase-1 &&
  "$(made_as debian:bookworm-slim)" == slim-1 ]]; then
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
slim=$cache/bookworm-slim.tar
if ((force)) || [[ ! -s "$tarball" || ! -s "$slim" ]]; then
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
  # The slim variant, as Docker Hub's: no documentation, manual pages or translations, now or
  # from later installs (dpkg path excludes); copyright files stay.
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EXCLUDES'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/lintian/*
EXCLUDES
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/usr/share/lintian/*
  tar -C "$root" --numeric-owner -cf "$slim.tmp" .
  mv "$slim.tmp" "$slim"
fi

# The build stage adds its compilers with apt, and the runtime stage only shared libraries, so
# neither needs more of Docker Hub's variants than these two.
full_id=$(podman import --quiet --change LABEL=moe.base=minbase-1 "$tarball" debian:bookworm)
slim_id=$(podman import --quiet --change LABEL=moe.base=slim-1 "$slim" debian:bookworm-slim)
short() { cut -c1-12 <<<"${1#sha256:}"; }
echo "base_images: debian:bookworm = $(short "$full_id") ($(du -h "$tarball" | cut -f1)," \
  "debian:bookworm-slim = $(short "$slim_id") ($(du -h "$slim" | cut -f1))"
