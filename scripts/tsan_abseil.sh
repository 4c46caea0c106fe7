#!/usr/bin/env bash
# Builds a ThreadSanitizer-instrumented Abseil into a private prefix (default build-tsan/absl-tsan),
# from Debian's own source package of the installed libabsl-dev: the same version and Debian
# patches, so the same SONAMEs (libabsl_*.so.20220623) and the same ABI options (options.h) as the
# headers the project compiles against. With PREFIX/lib first on the library path, the project's
# TSan build and Debian's gRPC both use the instrumented absl::Mutex, whose locking TSan then sees;
# nothing is recompiled. Idempotent: a prefix already built for the installed version, compiler
# and flags is kept, so a second run costs a second.
#
# Usage: scripts/tsan_abseil.sh [PREFIX]   (about 2 min on 2 cores; CXX picks the compiler,
#                                          which must be the one that builds build-tsan/)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--help" ]]; then sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0; fi

prefix=$(realpath -m "${1:-build-tsan/absl-tsan}")
version=$(dpkg-query -W -f='${Version}' libabsl-dev)
cxx=${CXX:-c++}
# -O1 -g: line tables for the reports at a bearable speed, as the project's TSan build.
flags="-fsanitize=thread -fno-omit-frame-pointer -O1 -g"
stamp="abseil $version; $("$cxx" --version | head -1); $flags"
if [[ -f "$prefix/stamp" && "$(cat "$prefix/stamp")" == "$stamp" ]]; then exit 0; fi

# dpkg-source unpacks and patches the source package; the keyring checks its signature.
missing=()
for p in dpkg-dev debian-archive-keyring cmake; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

work=$prefix.work
rm -rf "$work" "$prefix"
mkdir -p "$work/apt/lists/partial" "$work/apt/etc"
# deb-src lines in a private apt state, so /etc/apt stays as it is: the system's own Debian
# sources (the same mirror or snapshot the binaries came from) with Types: deb-src.
if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
  sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$work/apt/etc/src.sources"
else
  cat >"$work/apt/etc/src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi
apt_opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/apt/etc"
  -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" source -qq "abseil=$version")
src=$(find "$work" -maxdepth 1 -type d -name 'abseil-*' | head -1)

# Debian's shared build (debian/rules: C++17, shared libraries; the SONAME and options.h come
# from debian/patches, already applied), plus TSan. Tests off: only the libraries are needed.
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_STANDARD=17 \
  -DBUILD_SHARED_LIBS=ON -DABSL_PROPAGATE_CXX_STD=ON -DBUILD_TESTING=OFF -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >/dev/null
if ! cmake --build "$work/build" --parallel "$(nproc)" >"$work/build.log" 2>&1; then
  tail -50 "$work/build.log" >&2
  exit 1
fi
cmake --install "$work/build" >/dev/null
# The headers stay Debian's (/usr/include); only the libraries replace Debian's at run time.
rm -rf "$prefix/include"
if [[ ! -e "$prefix/lib/libabsl_synchronization.so.${version%%.*}" ]]; then
  echo "tsan_abseil.sh: no libabsl_synchronization.so.${version%%.*} in $prefix/lib" >&2
  exit 1
fi
rm -rf "$work"
echo "$stamp" >"$prefix/stamp"
echo "tsan_abseil.sh: Abseil $version with ThreadSanitizer in $prefix/lib"
