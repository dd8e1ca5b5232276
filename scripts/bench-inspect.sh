#!/usr/bin/env bash
# ckpt-inspect benchmark: show / records / verify on generated images, with
# `cat IMAGE > /dev/null` (page cache warm) measured in the same run as the
# baseline. Images go to $CKPT_BENCH_DIR (default /tmp/ckpt-inspect-bench)
# and are not committed.
#
#   scripts/bench-inspect.sh            # 2 GiB image + 131,072-chunk image
#   CKPT_BENCH_GIB=1 scripts/bench-inspect.sh
#   CKPT_BENCH_GIB=0.01 CKPT_BENCH_CHUNKS=1000 CKPT_BENCH_RUNS=1 ...   (smoke run, .ci/run)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
DIR=${CKPT_BENCH_DIR:-/tmp/ckpt-inspect-bench}
GIB=${CKPT_BENCH_GIB:-2}
RUNS=${CKPT_BENCH_RUNS:-5}
mkdir -p "$DIR"
cargo build -q --release -p ckpt-inspect --bin ckpt-inspect --example gen_bench_image
BIN=target/release/ckpt-inspect
GEN=target/release/examples/gen_bench_image
BIG=$DIR/big-${GIB}g.img
NCHUNKS=${CKPT_BENCH_CHUNKS:-131072}
CHUNKS=$DIR/chunks-$NCHUNKS.img
[ -s "$BIG" ] || "$GEN" big "$BIG" "$GIB"
[ -s "$CHUNKS" ] || "$GEN" chunks "$CHUNKS" "$NCHUNKS"

# best-of-$RUNS wall time of a command, in milliseconds (3 decimals)
best() {
    local best=
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" > /dev/null
        t1=$(date +%s%N)
        local d=$(( t1 - t0 ))
        if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
    done
    awk -v n="$best" 'BEGIN { printf "%.3f", n / 1e6 }'
}
catimg() { cat "$1"; }

printf '%-34s %12s %10s %14s\n' "measure" "ms" "target" "vs cat"
for img in "$BIG" "$CHUNKS"; do
    size=$(stat -c %s "$img")
    cat "$img" > /dev/null   # warm the page cache
    base=$(best catimg "$img")
    echo "# $(basename "$img"): $size bytes; baseline cat > /dev/null: $base ms ($(awk -v s="$size" -v t="$base" 'BEGIN{printf "%.2f", s/t/1e6}') GB/s)"
    for cmd in "show" "show --json" "records" "verify"; do
        # shellcheck disable=SC2086
        t=$(best "$BIN" $cmd "$img")
        target=
        case "$img:$cmd" in
            "$BIG:show"*) target="< 50 ms" ;;
            "$CHUNKS:show"* | "$CHUNKS:records") target="< 500 ms" ;;
            *:verify) target=">= 2 GB/s" ;;
        esac
        extra=$(awk -v t="$t" -v b="$base" 'BEGIN{printf "%.3fx", t/b}')
        if [ "$cmd" = verify ]; then
            extra="$extra, $(awk -v s="$size" -v t="$t" 'BEGIN{printf "%.2f GB/s", s/t/1e6}')"
        fi
        printf '%-34s %12s %10s %14s\n' "$(basename "$img") $cmd" "$t" "$target" "$extra"
    done
done
# show of the 2 GiB image from a pipe (must read every byte, for reference)
t=$(best sh -c "cat '$BIG' | '$BIN' show -")
printf '%-34s %12s %10s\n' "$(basename "$BIG") show - (pipe)" "$t" "(reference)"
