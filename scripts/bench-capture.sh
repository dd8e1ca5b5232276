#!/usr/bin/env bash
# Capture benchmark (issue 5): time ckpt-capture on a process with N MiB of touched,
# incompressible anonymous memory, against `cat` of the same number of bytes into the
# same filesystem, in the same run; and the image size for N MiB of written zeros.
#
# usage: scripts/bench-capture.sh [OUTDIR] [SIZES_MiB...]   (default: target/bench-capture, 512 2048)
# env:   CKPT_CAPTURE=path to a release ckpt-capture (default: build it)
#        RUNS=n  capture and cat are timed n times each, interleaved in alternating order
#                (default 5); medians reported, every run printed
#        CARGO_TARGET_DIR as usual.
# Prints one line per measurement and a JSON summary line at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
OUT=${1:-target/bench-capture}
shift || true
SIZES=${*:-512 2048}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TD=${CARGO_TARGET_DIR:-target}
if [[ -z "${CKPT_CAPTURE:-}" ]]; then
    cargo build --release -q -p ckpt-capture
    CKPT_CAPTURE=$TD/release/ckpt-capture
fi
cc -O2 -o "$OUT/memhog" fixtures/progs/memhog.c

start_hog() { # $1 MiB, $2 rand|zero -> sets HOG
    rm -f "$OUT/hog.fifo"; mkfifo "$OUT/hog.fifo"
    "$OUT/memhog" "$1" "$2" >"$OUT/hog.fifo" &
    HOG=$!
    read -r _ <"$OUT/hog.fifo"
}
stop_hog() { kill "$HOG" 2>/dev/null || true; wait "$HOG" 2>/dev/null || true; }
trap stop_hog EXIT

RUNS=${RUNS:-5}
summary="{"
for mb in $SIZES; do
    start_hog "$mb" rand
    # Baseline: cat the same number of bytes (already in the page cache) into the same fs.
    head -c $((mb << 20)) /dev/urandom >"$OUT/src"
    cat "$OUT/src" >/dev/null
    caps=() cats=() frozens=()
    time_capture() {
        rm -f "$OUT/img"; sync
        local t0 t1
        t0=$(now)
        "$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json"
        t1=$(now)
        caps+=("$(echo "$t1 - $t0" | bc -l)")
        frozens+=("$(sed -n 's/.*"frozen_s":\([0-9.e-]*\).*/\1/p' "$OUT/stats.json")")
        bytes=$(stat -c %s "$OUT/img")
        rm -f "$OUT/img"
    }
    time_cat() {
        rm -f "$OUT/dst"; sync
        local t0 t1
        t0=$(now)
        cat "$OUT/src" >"$OUT/dst"
        t1=$(now)
        cats+=("$(echo "$t1 - $t0" | bc -l)")
        rm -f "$OUT/dst"
    }
    # Alternate the order so that neither side always runs on freshly freed memory.
    for ((r = 0; r < RUNS; r++)); do
        if ((r % 2 == 0)); then time_capture; time_cat; else time_cat; time_capture; fi
    done
    stop_hog
    cap=$(printf '%s\n' "${caps[@]}" | median)
    catt=$(printf '%s\n' "${cats[@]}" | median)
    frozen=$(printf '%s\n' "${frozens[@]}" | median)
    echo "  runs: capture ${caps[*]}; cat ${cats[*]}"
    ratio=$(echo "$cap / $catt" | bc -l)
    printf 'anon %5d MiB: capture %.3f s (frozen %.3f s), image %d bytes; cat %.3f s; ratio %.2f\n' \
        "$mb" "$cap" "$frozen" "$bytes" "$catt" "$ratio"
    summary+=$(printf '"capture_%d_s":%.3f,"frozen_%d_s":%.3f,"cat_%d_s":%.3f,"ratio_%d":%.2f,"image_%d_bytes":%d,' \
        "$mb" "$cap" "$mb" "$frozen" "$mb" "$catt" "$mb" "$ratio" "$mb" "$bytes")
    rm -f "$OUT/src" "$OUT/dst" "$OUT/img"
done

start_hog 512 zero
t0=$(now)
"$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json"
t1=$(now)
stop_hog
zt=$(echo "$t1 - $t0" | bc -l)
zb=$(stat -c %s "$OUT/img")
printf 'zeros  512 MiB: capture %.3f s, image %d bytes (%s)\n' "$zt" "$zb" "$(cat "$OUT/stats.json")"
summary+=$(printf '"zeros_512_image_bytes":%d,"zeros_512_capture_s":%.3f}' "$zb" "$zt")
rm -f "$OUT/img" "$OUT/hog.fifo"
echo "$summary"
