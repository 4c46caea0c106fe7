#!/usr/bin/env bash
# Makes the certificates of a cluster that speaks mutual TLS, with openssl: a CA (DIR/ca.pem, its
# key in DIR/private/; kept if DIR already has them) and, for each NAME, a key and a certificate
# signed by that CA (NAME.pem, NAME.key), valid as server and as client, for the host names NAME,
# NAME.DOMAIN (--domain) and localhost and the address 127.0.0.1, plus any --san (on every
# certificate) and the names and addresses given with that NAME (on its certificate only).
# ECDSA P-256, valid 30 days. Every process gets its own pair and the CA:
#   --tls_cert=DIR/NAME.pem --tls_key=DIR/NAME.key --tls_ca=DIR/ca.pem
# DIR's top level holds no CA key, so it can become a Kubernetes Secret as it is.
#
# A peer checks that the certificate names the host it dialed, so on several hosts give each
# certificate the address others dial that host by (a pool's --advertise, the router's address in
# the pools' --join and the orchestrator's --router):
#   NAME=SAN[,SAN...]   SAN is DNS:HOSTNAME or IP:ADDRESS (IPv4 or IPv6), e.g.
#                       pool-a=IP:10.0.0.11,DNS:pool-a.example.net
#
# Keys are readable by their owner only, unless --readable-keys (for a bind mount into containers
# that run as another user).
#
# Usage: deploy/tls/make_certs.sh DIR NAME[=SAN,...]... [--domain=DOMAIN] [--san=SAN,...]...
#                                [--readable-keys]
#   e.g. deploy/tls/make_certs.sh build/tls router orchestrator pool-a pool-b viewer moectl
#        deploy/tls/make_certs.sh certs router=IP:10.0.0.10 pool-a=IP:10.0.0.11 \
#          pool-b=IP:10.0.0.12,DNS:gpu-1.example.net orchestrator=IP:10.0.0.20 viewer moectl
set -euo pipefail
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
if [[ $# -lt 2 || "$1" == --help || "$1" == -h ]]; then
  usage
  [[ "${1:-}" == --help || "${1:-}" == -h ]] && exit 0 || exit 2
fi
command -v openssl >/dev/null || { echo "make_certs: openssl is missing (apt-get install openssl)" >&2; exit 1; }
bad() { echo "make_certs: $*" >&2; exit 2; }

# Checks a comma-separated list of subjectAltName entries (what: where it came from, for the
# message) and prints it with a leading comma.
sans() {
  local what=$1 list=$2 entry value o entries out=""
  [[ -n "$list" ]] || bad "$what: no DNS:HOSTNAME or IP:ADDRESS after '='"
  [[ "$list" != *, && "$list" != ,* && "$list" != *,,* ]] || bad "$what: empty entry in '$list'"
  IFS=, read -ra entries <<<"$list"
  for entry in "${entries[@]}"; do
    value=${entry#*:}
    [[ ! "$entry" =~ [[:space:]] ]] || bad "$what: '$entry' has a space (entries apart by ',')"
    case "$entry" in
      DNS:*)
        [[ "$value" =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]] ||
          bad "$what: '$entry' is not a host name (DNS:pool-a.example.net)" ;;
      IP:*:*)
        [[ "$value" =~ ^[0-9A-Fa-f:.]+$ ]] || bad "$what: '$entry' is not an IPv6 address" ;;
      IP:*)
        [[ "$value" =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]] ||
          bad "$what: '$entry' is not an IPv4 address (IP:10.0.0.11)"
        for o in "${BASH_REMATCH[@]:1}"; do
          ((10#$o <= 255)) || bad "$what: '$entry': $o is not in [0, 255]"
        done ;;
      *) bad "$what: '$entry': want DNS:HOSTNAME or IP:ADDRESS" ;;
    esac
    out+=",$entry"
  done
  echo "$out"
}

dir=$1
shift
[[ "$dir" != -* ]] || bad "the first argument is the output directory, got '$dir'"
names=() extra="" domain="" key_mode=600
declare -A own=()  # name -> its own subjectAltName entries, with a leading comma
for a in "$@"; do
  case "$a" in
    --san=*) extra+=$(sans "--san" "${a#--san=}") ;;
    --domain=*) domain=${a#--domain=} ;;
    --readable-keys) key_mode=644 ;;
    -*) bad "unknown option '$a' (see --help)" ;;
    *) name=${a%%=*}
       [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || bad "bad name '$name' in '$a' (letters, digits, '.', '_', '-')"
       if [[ "$a" == *=* ]]; then own[$name]+=$(sans "$name" "${a#*=}"); fi
       names+=("$name") ;;
  esac
done
((${#names[@]})) || bad "no NAME given (see --help)"
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
    "subjectAltName=DNS:$name${domain:+,DNS:$name.$domain},DNS:localhost,IP:127.0.0.1$extra${own[$name]:-}" \
    >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$ca_key" \
    -CAserial "$dir/private/ca.srl" -CAcreateserial -days 30 -extfile "$dir/$name.ext" \
    -out "$dir/$name.pem" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
done
chmod 644 "$dir"/*.pem
chmod "$key_mode" "$dir"/*.key
echo "make_certs: CA and ${#names[@]} certificate(s) in $dir"
