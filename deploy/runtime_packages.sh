#!/usr/bin/env bash
# Prints the Debian packages a set of binaries loads at run time: the owners of every shared
# library in their ldd closure, plus the data the libraries read by name at run time (fontconfig's
# configuration and a font, for the viewer's GIF text). deploy/Dockerfile installs the libraries'
# packages with apt and then removes every package apt added that is not on this list (OpenCV's
# data, Mesa's drivers and LLVM, proj and GDAL data ...): libtorch1.13 depends on them, but
# nothing here loads them.
#
# Usage: deploy/runtime_packages.sh BINARY...   (on a machine with the build's libraries)
set -euo pipefail
if [[ $# -eq 0 || "$1" == --help ]]; then sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi

libs=$(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
if ldd "$@" | grep -q 'not found'; then
  ldd "$@" | grep 'not found' >&2
  exit 1
fi
# dpkg knows the path it installed, which may be the link or its target, under /lib or /usr/lib:
# every form of every library in one query (dpkg reads its database once), then the first form
# each library is known by.
declare -A owner_of
while IFS= read -r line; do
  [[ "$line" == "diversion "* ]] && continue  # "diversion by P from/to: PATH" is no owner
  pkgs=${line%%: /*}
  owner_of[${line#"$pkgs: "}]=${pkgs%%,*}
done < <(for lib in $libs; do
  printf '%s\n' "$lib" "$(readlink -f "$lib")" "/usr${lib#/usr}" "${lib#/usr}"
done | sort -u | xargs dpkg -S 2>/dev/null || true)
{
  for lib in $libs; do
    for path in "$lib" "$(readlink -f "$lib")" "/usr${lib#/usr}" "${lib#/usr}"; do
      if [[ -n "${owner_of[$path]:-}" ]]; then
        echo "${owner_of[$path]%%:*}"
        break
      fi
    done
  done
  # fontconfig's files (its postinst builds the system font cache, which the viewer's uid
  # cannot write itself) and a font.
  echo fontconfig
  echo fontconfig-config
  echo fonts-dejavu-core
} | sed 's/:amd64$//' |
  # BLAS and LAPACK are chosen by update-alternatives; the Dockerfile installs OpenBLAS itself.
  grep -vE '^lib(blas|lapack)3$|^libopenblas' | sort -u
