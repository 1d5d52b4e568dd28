#!/usr/bin/env bash
# certs.sh: make the certificates for shoal's mutually-authenticated TLS (mTLS) with openssl:
# a private CA, the coordinator's server certificate, and client certificates for sites and
# submitters. See docs/mtls.md.
#
# Why this shape: one private CA per deployment; the coordinator trusts only that CA for client
# certificates and clients trust only it for the server, so nothing from the public PKI (or
# another deployment's CA) gets in. Keys are EC P-256 (fast handshakes, small certs), written
# 0600. Certificates are signed with `openssl ca`, which (unlike `openssl x509 -req` in
# OpenSSL 3.0) takes explicit validity dates: tests use that to make an expired certificate
# without faking the clock. Tested by tests/proto/test_rpc_tls.c, which makes every
# certificate it uses with this script.
#
# usage: deploy/certs.sh [--dir DIR] [--days N] [--not-before T --not-after T] COMMAND [ARGS]
#   ca [--cn NAME]               make DIR/ca.key + DIR/ca.pem (refuses to overwrite; --force)
#   server [--cn NAME] [HOST...] make DIR/coordinator.{key,pem}; SANs: localhost, 127.0.0.1,
#                                ::1 and each HOST (a DNS name or an IP address)
#   client NAME...               make DIR/NAME.{key,pem} for each site or submitter (CN=NAME)
#   all [HOST...]                ca (unless present) + server with HOSTs + client "admin"
# options:
#   --dir DIR       where the files go (default: $SHOAL_CERTS_DIR or ./certs)
#   --days N        validity in days from now (default 365; the CA gets 10x)
#   --not-before T, --not-after T
#                   explicit validity, T = YYYYMMDDHHMMSSZ (UTC), e.g. 20200101000000Z
#   --out NAME      file stem for server/client (default coordinator / the client NAME)
#   --force         overwrite existing files
set -euo pipefail

die() { echo "certs.sh: $*" >&2; exit 2; }
usage() { sed -n '/^# usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

dir=${SHOAL_CERTS_DIR:-./certs}
days=365
not_before=""
not_after=""
cn=""
out=""
force=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=${2:?--dir needs a value}; shift 2 ;;
    --days) days=${2:?--days needs a value}; shift 2 ;;
    --not-before) not_before=${2:?--not-before needs a value}; shift 2 ;;
    --not-after) not_after=${2:?--not-after needs a value}; shift 2 ;;
    --cn) cn=${2:?--cn needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    --force) force=1; shift ;;
    -h|--help) usage 0 ;;
    --) shift; args+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -ge 1 ] || usage 2
cmd=${args[0]}
args=("${args[@]:1}")

command -v openssl >/dev/null || die "openssl not found (Debian: apt-get install openssl)"
[[ "$days" =~ ^[0-9]+$ ]] && [ "$days" -ge 1 ] || die "--days must be a positive integer"
for t in "$not_before" "$not_after"; do
  [ -z "$t" ] || [[ "$t" =~ ^[0-9]{14}Z$ ]] || die "bad date '$t': want YYYYMMDDHHMMSSZ (UTC)"
done
if [ -n "$not_before$not_after" ] && { [ -z "$not_before" ] || [ -z "$not_after" ]; }; then
  die "--not-before and --not-after go together"
fi
mkdir -p "$dir"
umask 077

check_name() { # a CN or file stem: no path tricks, nothing a shell or DN would mangle
  [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]] || die "bad name '$1': use letters, digits, . _ - (max 64)"
}

refuse_overwrite() {
  for f in "$@"; do
    if [ -e "$f" ] && [ "$force" -eq 0 ]; then die "$f exists (use --force to replace it)"; fi
  done
}

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

# sign CSR $1 into cert $2 with extensions file $3, using the CA in $dir
sign() {
  local csr=$1 crt=$2 ext=$3 tmp
  [ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] || die "no CA in $dir: run '$0 --dir $dir ca' first"
  tmp=$(mktemp -d)
  : > "$tmp/index.txt"
  echo 01 > "$tmp/serial" # required by the config; -rand_serial picks the real one
  cat > "$tmp/ca.cnf" <<EOF
[ ca ]
default_ca = shoal_ca
[ shoal_ca ]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = policy_cn
unique_subject = no
copy_extensions = none
[ policy_cn ]
commonName = supplied
EOF
  local validity=(-days "$days")
  if [ -n "$not_before" ]; then validity=(-startdate "$not_before" -enddate "$not_after"); fi
  if ! openssl ca -batch -notext -rand_serial -config "$tmp/ca.cnf" -cert "$dir/ca.pem" \
        -keyfile "$dir/ca.key" -in "$csr" -out "$crt" -extfile "$ext" "${validity[@]}" \
        > "$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    rm -rf "$tmp"
    die "signing $crt failed"
  fi
  rm -rf "$tmp"
  chmod 644 "$crt"
}

make_ca() {
  local name=${cn:-shoal-ca}
  check_name "$name"
  refuse_overwrite "$dir/ca.key" "$dir/ca.pem"
  new_key "$dir/ca.key"
  # The CA is valid from now for 10x --days (OpenSSL 3.0's req takes no start date).
  openssl req -new -x509 -key "$dir/ca.key" -subj "/CN=$name" -days $((days * 10)) -sha256 \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.pem" 2>/dev/null
  chmod 644 "$dir/ca.pem"
  echo "CA:     $dir/ca.pem (key $dir/ca.key: keep it offline; it can mint any identity)"
}

make_server() {
  local name=${cn:-coordinator} stem=${out:-coordinator} san="DNS:localhost,IP:127.0.0.1,IP:::1"
  check_name "$name"; check_name "$stem"
  for h in "$@"; do
    if [[ "$h" =~ ^[0-9.]+$ ]] || [[ "$h" == *:* ]]; then
      san="$san,IP:$h"
    elif [[ "$h" =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$ ]]; then
      san="$san,DNS:$h"
    else
      die "bad host name '$h'"
    fi
  done
  refuse_overwrite "$dir/$stem.key" "$dir/$stem.pem"
  new_key "$dir/$stem.key"
  openssl req -new -key "$dir/$stem.key" -subj "/CN=$name" -out "$dir/$stem.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
    "$san" > "$dir/$stem.ext"
  sign "$dir/$stem.csr" "$dir/$stem.pem" "$dir/$stem.ext"
  rm -f "$dir/$stem.csr" "$dir/$stem.ext"
  echo "server: $dir/$stem.pem ($san)"
}

make_client() {
  local name=$1 stem=${out:-$1}
  check_name "$name"; check_name "$stem"
  refuse_overwrite "$dir/$stem.key" "$dir/$stem.pem"
  new_key "$dir/$stem.key"
  openssl req -new -key "$dir/$stem.key" -subj "/CN=$name" -out "$dir/$stem.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' \
    > "$dir/$stem.ext"
  sign "$dir/$stem.csr" "$dir/$stem.pem" "$dir/$stem.ext"
  rm -f "$dir/$stem.csr" "$dir/$stem.ext"
  echo "client: $dir/$stem.pem (CN=$name)"
}

case "$cmd" in
  ca) make_ca ;;
  server) make_server "${args[@]}" ;;
  client)
    [ ${#args[@]} -ge 1 ] || die "client needs at least one NAME"
    [ -z "$out" ] || [ ${#args[@]} -eq 1 ] || die "--out takes one client NAME"
    for n in "${args[@]}"; do make_client "$n"; done ;;
  all)
    if [ ! -f "$dir/ca.pem" ]; then make_ca; fi
    cn=""
    make_server "${args[@]}"
    make_client admin ;;
  *) die "unknown command '$cmd' (ca, server, client, all; see --help)" ;;
esac
