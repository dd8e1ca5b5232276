#!/usr/bin/env bash
# Restore benchmark (issue 7): time `ckpt-restore IMAGE` (from start until it exits, which
# is when the restored process runs, detached) for images of N MiB of touched,
# incompressible anonymous memory, against the baseline of reading the image with `cat`
# to /dev/null plus touching N MiB of fresh anonymous memory (one write per page), in the
# same run, image in the page cache.
#
# usage: scripts/bench-restore.sh [OUTDIR] [SIZES_MiB...]   (default: target/bench-restore, 512 2048)
# env:   RUNS=n (default 3): each measurement n times, interleaved; medians and bests reported.
#        The ratio is the median of the per-run ratios (restore / baseline of the same
#        iteration): on a VM whose host backs freed guest memory lazily (virtio-balloon free
#        page reporting), first-touch costs swing both sides together by 2x between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
OUT=${1:-target/bench-restore}
shift || true
SIZES=${*:-512 2048}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TD=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p ckpt-capture -p ckpt-restore
CAP=$TD/release/ckpt-capture
RES=$TD/release/ckpt-restore
cc -O2 -o "$OUT/memhog" fixtures/progs/memhog.c
cat >"$OUT/touch.c" <<'C'
#include <stdlib.h>
#include <sys/mman.h>
int main(int argc, char **argv) {
    size_t len = (size_t)atol(argv[1]) << 20;
    volatile char *m = mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 1;
    madvise((void *)m, len, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < len; i += 4096) m[i] = 1;
    return 0;
}
C
cc -O2 -o "$OUT/touch" "$OUT/touch.c"
RUNS=${RUNS:-3}
summary="{"
for mb in $SIZES; do
    rm -f "$OUT/hog.fifo"; mkfifo "$OUT/hog.fifo"
    "$OUT/memhog" "$mb" rand >"$OUT/hog.fifo" &
    hog=$!
    read -r _ <"$OUT/hog.fifo"
    "$CAP" --kill -o "$OUT/img" "$hog" 2>/dev/null
    wait "$hog" 2>/dev/null || true
    cat "$OUT/img" >/dev/null
    size=$(stat -c %s "$OUT/img")
    rs=() bs=() qs=()
    for ((i = 0; i < RUNS; i++)); do
        t0=$(now)
        pid=$("$RES" --pid-any "$OUT/img")
        t1=$(now)
        kill -9 "$pid"
        while kill -0 "$pid" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do sleep 0.01; done
        t2=$(now)
        cat "$OUT/img" >/dev/null
        t3=$(now)
        "$OUT/touch" "$mb"
        t4=$(now)
        r=$(echo "$t1 - $t0" | bc -l); b=$(echo "$t3 - $t2 + $t4 - $t3" | bc -l)
        q=$(echo "$r / $b" | bc -l)
        rs+=("$r"); bs+=("$b"); qs+=("$q")
        printf 'run %d: %4d MiB restore %.3f s, cat+touch %.3f s, ratio %.2f\n' "$i" "$mb" "$r" "$b" "$q"
    done
    r=$(printf '%s\n' "${rs[@]}" | median); b=$(printf '%s\n' "${bs[@]}" | median)
    rmin=$(printf '%s\n' "${rs[@]}" | sort -g | head -1); bmin=$(printf '%s\n' "${bs[@]}" | sort -g | head -1)
    ratio=$(printf '%s\n' "${qs[@]}" | median)
    printf '%4d MiB (image %d bytes): restore median %.3f s (best %.3f), cat+touch median %.3f s (best %.3f), median of the per-run ratios %.2f\n' \
        "$mb" "$size" "$r" "$rmin" "$b" "$bmin" "$ratio"
    summary+="\"${mb}MiB\":{\"restore_s\":$r,\"restore_best_s\":$rmin,\"baseline_s\":$b,\"baseline_best_s\":$bmin,\"ratio\":$ratio},"
    rm -f "$OUT/img"
done
echo "${summary%,}}"
