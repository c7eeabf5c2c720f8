#!/usr/bin/env bash
# A CA and a serving certificate for the pullguard webhook Service, with openssl only.
#
#   certs/make-certs.sh SERVICE NAMESPACE [DIR]           (DIR defaults to ./certs/out)
#   certs/make-certs.sh --new-ca SERVICE NAMESPACE [DIR]  start over with a new CA
#
# Writes DIR/ca.crt, DIR/ca.key, DIR/tls.crt, DIR/tls.key and prints the caBundle (base64 of
# ca.crt) on stdout. Run it again with the same DIR to ROTATE the serving certificate: the CA in
# DIR is kept, so the caBundle does not change and pullguard reloads tls.crt/tls.key by content.
# The same as `pullguard certs --service S --namespace NS --out DIR`, for machines without Python.
#
# The API server calls https://SERVICE.NAMESPACE.svc and checks the certificate's DNS SANs (Go
# ignores the Common Name), so every name the Service answers to is a SAN.
set -euo pipefail

new_ca=0
if [[ "${1:-}" == "--new-ca" ]]; then
  new_ca=1
  shift
fi
if [[ $# -lt 2 ]]; then
  sed -n '2,8p' "$0" >&2
  exit 2
fi
service=$1
namespace=$2
dir=${3:-certs/out}
label='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
for value in "$service" "$namespace"; do
  if [[ ! $value =~ $label ]]; then
    echo "make-certs.sh: '$value' is not a DNS label (lowercase letters, digits and '-', at most 63)" >&2
    exit 2
  fi
done

mkdir -p "$dir"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ $new_ca == 1 || ! -s "$dir/ca.crt" || ! -s "$dir/ca.key" ]] \
  || ! openssl x509 -in "$dir/ca.crt" -noout -checkend $((7 * 24 * 3600)) >/dev/null; then
  openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
    -subj "/CN=pullguard webhook CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tmp/ca.key" -out "$tmp/ca.crt" 2>/dev/null
  mv "$tmp/ca.key" "$dir/ca.key"
  chmod 644 "$tmp/ca.crt"
  mv "$tmp/ca.crt" "$dir/ca.crt"
  echo "make-certs.sh: made a new CA $dir/ca.crt (update the caBundle)" >&2
else
  echo "make-certs.sh: keeping the CA $dir/ca.crt (the caBundle is unchanged)" >&2
fi

names="DNS:$service,DNS:$service.$namespace,DNS:$service.$namespace.svc,DNS:$service.$namespace.svc.cluster.local"
cat >"$tmp/ext.cnf" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$names
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$service.$namespace.svc" -keyout "$tmp/tls.key" -out "$tmp/tls.csr" 2>/dev/null
openssl x509 -req -sha256 -days 365 -in "$tmp/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/ext.cnf" -out "$tmp/tls.crt" 2>/dev/null
# key first, then certificate: a reader that sees the new certificate sees its key too
mv "$tmp/tls.key" "$dir/tls.key"
chmod 644 "$tmp/tls.crt"
mv "$tmp/tls.crt" "$dir/tls.crt"
echo "make-certs.sh: wrote $dir/tls.crt and $dir/tls.key for ${names//DNS:/}; the caBundle follows" >&2
base64 -w0 "$dir/ca.crt"
echo
