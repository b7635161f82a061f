#!/usr/bin/env bash
# Fuzzes the SIP codec with cargo-fuzz (libFuzzer), seeded with the RFC 4475
# and RFC 5118 torture messages. Not part of CI.
#   crates/tapir-sip/fuzz/run.sh [target] [seconds]
# target: parse_datagram (default) or stream_framer; seconds: 60 by default.
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
target="${1:-parse_datagram}"
seconds="${2:-60}"
corpus="corpus/$target"
mkdir -p "$corpus"
find ../tests/torture -name '*.dat' -exec cp {} "$corpus/" \;
exec cargo +nightly fuzz run "$target" "$corpus" -- -max_total_time="$seconds" -max_len=8192
