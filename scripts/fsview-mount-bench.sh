#!/usr/bin/env bash
# Issue 8 measurement: mount a 2 GiB image over FUSE and read one page of task-1/mem.
# Needs root and /dev/fuse. Usage: scripts/fsview-mount-bench.sh [DIR] [GIB] [ROUNDS]
# Prints every run and the medians (cold: page cache dropped before mounting).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-/var/tmp/ckpt-fsview-bench}
gib=${2:-2}
rounds=${3:-5}
mkdir -p "$dir/mnt"
cargo build -q --release -p ckpt-inspect --example fsview_bench
exec target/release/examples/fsview_bench "$dir/big-${gib}g.ckpt" "$dir/mnt" "$gib" "$rounds"
