#!/usr/bin/env bash
# Makes the certificates of a cluster that speaks mutual TLS, with openssl: a CA (DIR/ca.pem, its
# key in DIR/private/; kept if DIR already has them) and, for each NAME, a key and a certificate
# signed by that CA (NAME.pem, NAME.key), valid as server and as client, for the host names NAME,
# NAME.DOMAIN (--domain) and localhost and the address 127.0.0.1, plus any --san. ECDSA P-256,
# valid 30 days. Every process gets its own pair and the CA:
#   --tls_cert=DIR/NAME.pem --tls_key=DIR/NAME.key --tls_ca=DIR/ca.pem
# DIR's top level holds no CA key, so it can become a Kubernetes Secret as it is.
#
# Keys are readable by their owner only, unless --readable-keys (for a bind mount into containers
# that run as another user).
#
# Usage: deploy/tls/make_certs.sh DIR NAME... [--domain=DOMAIN] [--san=DNS:host|IP:addr]...
#                                [--readable-keys]
#   e.g. deploy/tls/make_certs.sh build/tls router orchestrator pool-a pool-b viewer moectl
set -euo pipefail
if [[ $# -lt 2 || "$1" == --help || "$1" == -h ]]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  [[ "${1:-}" == --help || "${1:-}" == -h ]] && exit 0 || exit 2
fi
command -v openssl >/dev/null || { echo "make_certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
dir=$1
shift
names=() extra="" domain="" key_mode=600
for a in "$@"; do
  case "$a" in
    --san=*) extra+=",${a#--san=}" ;;
    --domain=*) domain=${a#--domain=} ;;
    --readable-keys) key_mode=644 ;;
    -*) echo "make_certs: unknown option '$a'" >&2; exit 2 ;;
    *) [[ "$a" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "make_certs: bad name '$a'" >&2; exit 2; }
       names+=("$a") ;;
  esac
done
mkdir -p "$dir/private"
umask 077
ca_key=$dir/private/ca.key
if [[ ! -f "$dir/ca.pem" || ! -f "$ca_key" ]]; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=moe-inference cluster CA" -keyout "$ca_key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null
fi
for name in "${names[@]}"; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$name" -keyout "$dir/$name.key" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth,clientAuth" \
    "subjectAltName=DNS:$name${domain:+,DNS:$name.$domain},DNS:localhost,IP:127.0.0.1$extra" \
    >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$ca_key" \
    -CAserial "$dir/private/ca.srl" -CAcreateserial -days 30 -extfile "$dir/$name.ext" \
    -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
done
chmod 644 "$dir"/*.pem
chmod "$key_mode" "$dir"/*.key
echo "make_certs: CA and ${#names[@]} certificate(s) in $dir"
