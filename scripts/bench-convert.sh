#!/usr/bin/env bash
# Conversion benchmark of the command users run (issue 3): `ckpt-inspect convert` file to
# file, native-1 -> ckpt-v21 and back, on a generated image of N GiB of page data, against
# copying the same file through user space (`dd bs=1M`) in the same run. Input mapped by
# ckpt-inspect (page cache warm); output written to a temporary file and renamed, as always.
# The round trip must give the input back byte for byte (the script fails otherwise).
# Memory is measured by the library benchmark (`convert_bench`, stream path): the mapped
# input's page-cache pages would count in this command's RSS.
#
# usage: scripts/bench-convert.sh [DIR] [GiB...]   (default: /tmp/ckpt-convert-bench, 1 4)
# env:   RUNS=n (default 5): each measurement n times, interleaved; medians and the median
#        of the per-run ratios (convert time / copy time of the same iteration) reported.
# A tmpfs as DIR takes the disk out of the measurement.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
DIR=${1:-/tmp/ckpt-convert-bench}
shift || true
SIZES=${*:-1 4}
RUNS=${RUNS:-5}
mkdir -p "$DIR"
cargo build -q --release -p ckpt-inspect --bin ckpt-inspect --example gen_bench_image
TD=${CARGO_TARGET_DIR:-target}
BIN=$TD/release/ckpt-inspect
GEN=$TD/release/examples/gen_bench_image
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
summary="{"
for gib in $SIZES; do
    in=$DIR/in.img v21=$DIR/out.v21 back=$DIR/back.img copy=$DIR/copy
    "$GEN" big "$in" "$gib" 2>/dev/null
    size=$(stat -c %s "$in")
    cat "$in" >/dev/null
    fs=() bs=() cs=() qf=() qb=()
    for ((i = 0; i < RUNS; i++)); do
        rm -f "$v21" "$back" "$copy"
        t0=$(now)
        "$BIN" convert --to ckpt-v21 --target-kernel keep "$in" "$v21" >/dev/null
        t1=$(now)
        "$BIN" convert --to native-1 --target-kernel keep "$v21" "$back" >/dev/null
        t2=$(now)
        cmp -s "$in" "$back" || { echo "round trip differs: $in $back" >&2; exit 1; }
        rm -f "$v21" "$back"
        t3=$(now)
        dd if="$in" of="$copy" bs=1M status=none
        t4=$(now)
        f=$(echo "$t1 - $t0" | bc -l) b=$(echo "$t2 - $t1" | bc -l) c=$(echo "$t4 - $t3" | bc -l)
        fs+=("$f") cs+=("$c") bs+=("$b")
        qf+=("$(echo "$f / $c" | bc -l)") qb+=("$(echo "$b / $c" | bc -l)")
        printf 'run %d: %s GiB  to ckpt-v21 %.3f s, back to native-1 %.3f s, dd copy %.3f s\n' \
            "$i" "$gib" "$f" "$b" "$c"
    done
    f=$(printf '%s\n' "${fs[@]}" | median) b=$(printf '%s\n' "${bs[@]}" | median)
    c=$(printf '%s\n' "${cs[@]}" | median)
    rf=$(printf '%s\n' "${qf[@]}" | median) rb=$(printf '%s\n' "${qb[@]}" | median)
    gbs() { echo "$size / $1 / 1000000000" | bc -l; }
    printf '%s GiB (image %d bytes): native-1 -> ckpt-v21 %.3f s (%.2f GB/s, %.2fx the copy), ckpt-v21 -> native-1 %.3f s (%.2f GB/s, %.2fx), dd copy %.3f s (%.2f GB/s); round trip byte-identical\n' \
        "$gib" "$size" "$f" "$(gbs "$f")" "$rf" "$b" "$(gbs "$b")" "$rb" "$c" "$(gbs "$c")"
    summary+="\"${gib}GiB\":{\"to_v21_s\":$f,\"to_native_s\":$b,\"copy_s\":$c,\"to_v21_ratio\":$rf,\"to_native_ratio\":$rb},"
    rm -f "$in" "$v21" "$back" "$copy"
done
echo "${summary%,}}"
