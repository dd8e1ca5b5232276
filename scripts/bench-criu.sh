#!/usr/bin/env bash
# ckpt-inspect against CRIU's crit on the same real CRIU dumps (CRIU 4.1.1 from
# scripts/build-criu.sh, which also builds its crit):
#
#   1. show of a dump of a process with GIB GiB of touched memory: `ckpt-inspect show DIR`
#      (tree, threads, registers, memory map with page counts, files, sockets, mounts)
#      against crit's views of the same things: `crit x DIR ps`, `crit x DIR fds`,
#      `crit x DIR mems` and `crit show pagemap-PID.img` (crit has no one command for it);
#   2. decode of a pagemap with ENTRIES entries (every other page written, so every page is
#      its own entry): `crit decode -i pagemap-PID.img` against ckpt-criu's `decode` example
#      (the same JSON-per-entry job) and `ckpt-inspect show`.
#
# Runs are interleaved; medians of RUNS (default 5) with min-max. Usage (root):
#   scripts/bench-criu.sh [DIR [GIB [ENTRIES]]]      defaults: target/bench-criu 2 100000
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
dir=${1:-target/bench-criu}
gib=${2:-2}
entries=${3:-100000}
runs=${RUNS:-5}

criu=$(scripts/build-criu.sh)
crit=$(scripts/build-criu.sh --crit)
cargo build -q --release -p ckpt-inspect
cargo build -q --release -p ckpt-criu --example decode
ins=target/release/ckpt-inspect
dec=target/release/examples/decode
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# A python process that writes one byte into every (step=1) or every other (step=2) page
# of N bytes, then sleeps; dumped by CRIU (which kills it).
dump() { # out-dir bytes step
  local out=$1 bytes=$2 step=$3 ready=$dir/ready
  rm -rf "$out" "$ready"
  mkdir -p "$out"
  # Private anonymous memory without transparent huge pages (a huge page would make the
  # untouched pages between the written ones present too).
  setsid /usr/bin/python3 -c "
import mmap, time
n = $bytes
m = mmap.mmap(-1, n, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(0, n, 4096 * $step):
    m[i] = 1
open('$ready', 'w').close()
time.sleep(1000)
" </dev/null >/dev/null 2>&1 &
  local pid=$!
  while [ ! -e "$ready" ]; do sleep 0.05; done
  "$criu" dump -t "$pid" -D "$out" --shell-job -o dump.log >/dev/null 2>&1 || {
    tail -20 "$out/dump.log" >&2
    kill -9 "$pid" 2>/dev/null || true
    exit 1
  }
  wait "$pid" 2>/dev/null || true
  echo "$pid"
}

t() { # command... ; prints seconds
  local s e
  s=$(now)
  "$@" >/dev/null
  e=$(now)
  awk -v s="$s" -v e="$e" 'BEGIN { printf "%.6f\n", e - s }'
}

crit_show() { # dump-dir pid
  "$crit" x "$1" ps >/dev/null
  "$crit" x "$1" fds >/dev/null
  "$crit" x "$1" mems >/dev/null
  "$crit" show "$1/pagemap-$2.img" >/dev/null
}

stats() { # name file-of-seconds
  local m lo hi
  m=$(median <"$2")
  lo=$(sort -g "$2" | head -1)
  hi=$(sort -g "$2" | tail -1)
  printf '%-34s %8.4f s  (%.4f-%.4f)\n' "$1" "$m" "$lo" "$hi"
}

ratio() { # a-file b-file -> median(a)/median(b)
  awk -v a="$(median <"$1")" -v b="$(median <"$2")" 'BEGIN { printf "%.1f", a / b }'
}

bytes=$(awk -v g="$gib" 'BEGIN { printf "%d", g * 1073741824 }')
echo "== dump of $gib GiB touched memory"
pid1=$(dump "$dir/big" "$bytes" 1)
du -sh "$dir/big" | sed 's/^/   /'
echo "== dump of a pagemap with ~$entries entries"
pid2=$(dump "$dir/sparse" $((entries * 8192)) 2)
n=$("$dec" "$dir/sparse/pagemap-$pid2.img" | grep -o '"vaddr"' | wc -l)
echo "   pagemap-$pid2.img: $(stat -c %s "$dir/sparse/pagemap-$pid2.img") bytes, $n entries"

r=$(mktemp -d)
# Warm the page cache and check both tools read the dumps.
"$ins" show "$dir/big" >/dev/null
crit_show "$dir/big" "$pid1"
[ "$("$crit" decode -i "$dir/sparse/pagemap-$pid2.img" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["entries"]))')" = $((n + 1)) ]
for i in $(seq "$runs"); do
  t "$ins" show "$dir/big" >>"$r/ins_show"
  t crit_show "$dir/big" "$pid1" >>"$r/crit_show"
  t "$dec" "$dir/sparse/pagemap-$pid2.img" >>"$r/dec_pm"
  t "$crit" decode -i "$dir/sparse/pagemap-$pid2.img" >>"$r/crit_pm"
  t "$ins" show "$dir/sparse" >>"$r/ins_sparse"
  t "$crit" show "$dir/sparse/pagemap-$pid2.img" >>"$r/crit_pm_show"
done
echo "== $runs runs, medians (min-max)"
stats "ckpt-inspect show ($gib GiB dump)" "$r/ins_show"
stats "crit x ps+fds+mems, show pagemap" "$r/crit_show"
echo "   ratio crit / ckpt-inspect: $(ratio "$r/crit_show" "$r/ins_show")x"
stats "decode pagemap ($n entries)" "$r/dec_pm"
stats "crit decode -i pagemap" "$r/crit_pm"
echo "   ratio crit / decode: $(ratio "$r/crit_pm" "$r/dec_pm")x"
stats "ckpt-inspect show (sparse dump)" "$r/ins_sparse"
stats "crit show pagemap (pretty)" "$r/crit_pm_show"
echo "   ratio crit show pagemap / ckpt-inspect show: $(ratio "$r/crit_pm_show" "$r/ins_sparse")x"
rm -rf "$r"
[ -n "${KEEP:-}" ] || rm -rf "$dir/big" "$dir/sparse"
