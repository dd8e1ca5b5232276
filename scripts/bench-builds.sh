#!/usr/bin/env bash
# Before/after benchmark of two builds of ckpt-inspect: did a change slow the inspector or the
# converter down? Builds REV_A and REV_B (any git revisions; "." = the working tree) in
# throw-away worktrees, generates the same images with each build's gen_bench_image (checked
# byte-identical with cmp), then times `show`, `records`, `verify` and `convert` (native-1 ->
# ckpt-v21 and back) with both builds, alternating which goes first, and reports the medians
# and B/A ratios. The baseline (REV_A) is measured in the same run, on the same images.
#
# usage: scripts/bench-builds.sh REV_A REV_B [DIR]   (DIR default: /tmp/ckpt-bench-builds)
# env:   RUNS=n (default 9), GIB (default 0.25: the "big" image), CHUNKS (default 20000:
#        the "chunks" image of one-page chunks)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
A=$1 B=$2 DIR=${3:-/tmp/ckpt-bench-builds}
RUNS=${RUNS:-9} GIB=${GIB:-0.25} CHUNKS=${CHUNKS:-20000}
mkdir -p "$DIR"
build() { # REV NAME -> $DIR/NAME/{ckpt-inspect,gen}
  local rev=$1 name=$2 src
  if [ "$rev" = . ]; then
    src=$PWD
  else
    src=$DIR/src-$name
    rm -rf "$src"
    git worktree remove --force "$src" 2>/dev/null || true
    git worktree add -q --detach "$src" "$rev"
  fi
  (cd "$src" && CARGO_TARGET_DIR=$DIR/target-$name cargo build -q --release -p ckpt-inspect \
    --bin ckpt-inspect --example gen_bench_image)
  mkdir -p "$DIR/$name"
  cp "$DIR/target-$name/release/ckpt-inspect" "$DIR/$name/ckpt-inspect"
  cp "$DIR/target-$name/release/examples/gen_bench_image" "$DIR/$name/gen"
  if [ "$rev" != . ]; then git worktree remove --force "$src"; fi
}
echo "== building $A and $B (release)"
build "$A" a
build "$B" b
echo "== images"
"$DIR/a/gen" big "$DIR/big.img" "$GIB" >/dev/null
"$DIR/b/gen" big "$DIR/big-b.img" "$GIB" >/dev/null
"$DIR/a/gen" chunks "$DIR/chunks.img" "$CHUNKS" >/dev/null
"$DIR/b/gen" chunks "$DIR/chunks-b.img" "$CHUNKS" >/dev/null
cmp "$DIR/big.img" "$DIR/big-b.img" && cmp "$DIR/chunks.img" "$DIR/chunks-b.img" ||
  { echo "the two generators wrote different images: not comparable" >&2; exit 1; }
rm -f "$DIR/big-b.img" "$DIR/chunks-b.img"
cat "$DIR/big.img" "$DIR/chunks.img" >/dev/null # page cache warm
now() { date +%s%N; }
# one measurement in microseconds: BUILD CMD...
run() {
  local bin=$DIR/$1/ckpt-inspect t0 t1
  shift
  t0=$(now)
  case $1 in
    convert) "$bin" convert --to ckpt-v21 --target-kernel keep "$2" -o "$DIR/out.v21" >/dev/null &&
      "$bin" convert --to native-1 --target-kernel keep "$DIR/out.v21" -o "$DIR/out.img" >/dev/null ;;
    *) "$bin" "$1" "$2" >/dev/null ;;
  esac
  t1=$(now)
  echo $(((t1 - t0) / 1000))
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf '%-16s %12s %12s %8s\n' measure "A µs" "B µs" "B/A"
for img in big chunks; do
  for cmd in show records verify convert; do
    : >"$DIR/ta"
    : >"$DIR/tb"
    for i in $(seq "$RUNS"); do
      if [ $((i % 2)) = 1 ]; then
        run a "$cmd" "$DIR/$img.img" >>"$DIR/ta"
        run b "$cmd" "$DIR/$img.img" >>"$DIR/tb"
      else
        run b "$cmd" "$DIR/$img.img" >>"$DIR/tb"
        run a "$cmd" "$DIR/$img.img" >>"$DIR/ta"
      fi
    done
    if [ "$cmd" = convert ]; then
      cmp "$DIR/out.img" "$DIR/$img.img" || { echo "round trip differs" >&2; exit 1; }
    fi
    ma=$(median <"$DIR/ta")
    mb=$(median <"$DIR/tb")
    printf '%-16s %12s %12s %8s\n' "$img $cmd" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b / a}')"
  done
done
rm -f "$DIR/out.v21" "$DIR/out.img" "$DIR/ta" "$DIR/tb"
