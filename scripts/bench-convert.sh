#!/usr/bin/env bash
# Conversion benchmark of the command users run (issue 3): `ckpt-inspect convert` file to
# file, native-1 -> ckpt-v21 and back, on a generated image of N GiB of page data, against
# copying the same file through user space (`dd bs=1M`) in the same run. Input mapped by
# ckpt-inspect (page cache warm); output written to a temporary file and renamed, as always.
# The round trip must give the input back byte for byte (BLAKE2 hash; the script fails
# otherwise).
# Memory is measured by the library benchmark (`convert_bench`, stream path): the mapped
# input's page-cache pages would count in this command's RSS.
#
# usage: scripts/bench-convert.sh [DIR] [GiB...]   (default: /tmp/ckpt-convert-bench, 1 4)
# env:   RUNS=n (default 5): each measurement n times, interleaved; medians and the median
#        of the per-run ratios (convert time / copy time of the same iteration) reported,
#        and the user CPU time of the conversions: most of a file-to-file conversion is the
#        kernel writing the output, which swings 2-3x between runs on this machine kind.
# A tmpfs as DIR takes the disk out of the measurement.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
DIR=${1:-/tmp/ckpt-convert-bench}
shift || true
SIZES=${*:-1 4}
RUNS=${RUNS:-5}
mkdir -p "$DIR"
cargo build -q --release -p ckpt-inspect --bin ckpt-inspect --example gen_bench_image
TD=${CARGO_TARGET_DIR:-target}
BIN=$TD/release/ckpt-inspect
GEN=$TD/release/examples/gen_bench_image
TIMEFORMAT='%R %U %S'
# "wall user sys" seconds of a command (its output discarded)
timed() { { time "$@" >/dev/null 2>&1; } 2>&1; }
summary="{"
for gib in $SIZES; do
    in=$DIR/in.img v21=$DIR/out.v21 back=$DIR/back.img copy=$DIR/copy
    "$GEN" big "$in" "$gib" 2>/dev/null
    size=$(stat -c %s "$in")
    sum=$(b2sum <"$in")
    fs=() bs=() cs=() qf=() qb=() us=()
    for ((i = 0; i < RUNS; i++)); do
        # At most two images exist at a time (on a tmpfs, occupancy slows page allocation):
        # the converted-back image is checked against the input's hash and becomes the next
        # iteration's input.
        rm -f "$v21" "$back" "$copy"
        cat "$in" >/dev/null
        read -r f fu fsy < <(timed "$BIN" convert --to ckpt-v21 --target-kernel keep "$in" "$v21")
        [ -s "$v21" ] || { echo "conversion to ckpt-v21 failed" >&2; exit 1; }
        rm -f "$in"
        read -r b bu bsy < <(timed "$BIN" convert --to native-1 --target-kernel keep "$v21" "$back")
        [ "$(b2sum <"$back")" = "$sum" ] || { echo "round trip differs: $back" >&2; exit 1; }
        mv "$back" "$in"
        rm -f "$v21"
        read -r c _ _ < <(timed dd if="$in" of="$copy" bs=1M status=none)
        us+=("$fu" "$bu")
        fs+=("$f") cs+=("$c") bs+=("$b")
        qf+=("$(echo "$f / $c" | bc -l)") qb+=("$(echo "$b / $c" | bc -l)")
        printf 'run %d: %s GiB  to ckpt-v21 %.3f s (user %.2f, sys %.2f), back to native-1 %.3f s (user %.2f, sys %.2f), dd copy %.3f s\n' \
            "$i" "$gib" "$f" "$fu" "$fsy" "$b" "$bu" "$bsy" "$c"
    done
    f=$(printf '%s\n' "${fs[@]}" | median) b=$(printf '%s\n' "${bs[@]}" | median)
    c=$(printf '%s\n' "${cs[@]}" | median)
    rf=$(printf '%s\n' "${qf[@]}" | median) rb=$(printf '%s\n' "${qb[@]}" | median)
    u=$(printf '%s\n' "${us[@]}" | median)
    gbs() { echo "if ($1 > 0) $size / $1 / 1000000000 else 0" | bc -l; }
    printf '%s GiB (image %d bytes): native-1 -> ckpt-v21 %.3f s (%.2f GB/s, %.2fx the copy), ckpt-v21 -> native-1 %.3f s (%.2f GB/s, %.2fx), dd copy %.3f s (%.2f GB/s); round trip byte-identical; user CPU of a conversion (median of both ways) %.2f s = %.2f GB/s\n' \
        "$gib" "$size" "$f" "$(gbs "$f")" "$rf" "$b" "$(gbs "$b")" "$rb" "$c" "$(gbs "$c")" "$u" "$(gbs "$u")"
    summary+="\"${gib}GiB\":{\"to_v21_s\":$f,\"to_native_s\":$b,\"copy_s\":$c,\"to_v21_ratio\":$rf,\"to_native_ratio\":$rb,\"conversion_user_s\":$u},"
    rm -f "$in" "$v21" "$back" "$copy"
done
echo "${summary%,}}"
