#!/usr/bin/env bash
# Installs every Debian package the project needs to build, run and test. Idempotent: packages
# already present are skipped, so a second run costs a few seconds.
#
# Usage: scripts/setup.sh [--build-only] [--help]
#   --build-only   only what building the binaries needs (the image's build stage)
set -euo pipefail

build_only=0
case "${1:-}" in
  --help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --build-only) build_only=1 ;;
  "") ;;
  *) echo "setup.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

packages=(
  # build
  build-essential cmake ninja-build ccache lld pkg-config git
  # libraries
  libtorch-dev libopenblas0-pthread libgoogle-perftools-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev libsentencepiece-dev sentencepiece nlohmann-json3-dev
  libcairo2-dev libgif-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
tools=(
  # tests and tools: the Python reference, the real Prometheus, the browser, the terminal
  python3-torch python3-numpy python3-yaml prometheus chromium chromium-driver tmux docker-compose
  # the fuzz targets (scripts/fuzz.sh): clang with libFuzzer; mutual TLS certificates: openssl
  clang openssl
  # the data pipeline (scripts/prepare_data.sh)
  python3-sentencepiece
  curl ca-certificates
  # the container test (tests/container/): podman serving the Docker API to docker-compose,
  # base images made with debootstrap, runc (crun cannot run on hybrid cgroup hosts), pgrep
  podman runc catatonit iptables netavark aardvark-dns debootstrap procps
)
if ((!build_only)); then packages+=("${tools[@]}"); fi
# Node.js (for the browser test's driver) and kubectl (to render the Kubernetes manifests) may
# come from other repositories; install Debian's only when the command is absent.
if ((!build_only)); then
  command -v node >/dev/null || packages+=(nodejs npm)
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
fi

# LibTorch calls whatever libblas.so.3 is selected; the reference BLAS is ~10x slower.
if [[ -x /usr/sbin/update-alternatives ]]; then
  openblas=$(update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep openblas | head -1 || true)
  if [[ -n "$openblas" ]]; then
    sudo_cmd=()
    if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
    "${sudo_cmd[@]}" update-alternatives --set libblas.so.3-x86_64-linux-gnu "$openblas" >/dev/null
  fi
fi
