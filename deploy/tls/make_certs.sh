#!/usr/bin/env bash
# Makes the certificates of a cluster that speaks mutual TLS, with openssl: a CA (ca.pem, ca.key;
# kept if DIR already has one) and, for each NAME, a key and a certificate signed by that CA
# (NAME.pem, NAME.key), valid as server and as client, for the host names NAME and localhost and
# the address 127.0.0.1 (plus any --san given). ECDSA P-256, valid 30 days. Every process gets
# its own pair and the CA: --tls_cert=DIR/NAME.pem --tls_key=DIR/NAME.key --tls_ca=DIR/ca.pem.
#
# Usage: deploy/tls/make_certs.sh DIR NAME... [--san=DNS:host|IP:addr]...
#   e.g. deploy/tls/make_certs.sh build/tls router orchestrator pool-a pool-b viewer moectl
set -euo pipefail
if [[ $# -lt 2 || "$1" == --help || "$1" == -h ]]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  [[ "${1:-}" == --help || "${1:-}" == -h ]] && exit 0 || exit 2
fi
command -v openssl >/dev/null || { echo "make_certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
dir=$1
shift
names=() extra=""
for a in "$@"; do
  case "$a" in
    --san=*) extra+=",${a#--san=}" ;;
    -*) echo "make_certs: unknown option '$a'" >&2; exit 2 ;;
    *) [[ "$a" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "make_certs: bad name '$a'" >&2; exit 2; }
       names+=("$a") ;;
  esac
done
mkdir -p "$dir"
umask 077
if [[ ! -f "$dir/ca.pem" || ! -f "$dir/ca.key" ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=moe-inference cluster CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
fi
for name in "${names[@]}"; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:$name,DNS:localhost,IP:127.0.0.1$extra" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -CAcreateserial -days 30 -extfile "$dir/$name.ext" -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
done
chmod 644 "$dir"/*.pem
echo "make_certs: CA and ${#names[@]} certificate(s) in $dir"
