#!/usr/bin/env bash
# Capture benchmark (issues 5, 22): in the same run and interleaved, time
#   * ckpt-capture of a process with N MiB of touched, incompressible anonymous memory,
#   * the same with CKPT_DIRECT=0 ("buffered": the image written through the page cache),
#   * `criu dump --leave-running` of the same process (CRIU 4.1.1 from scripts/build-criu.sh),
#   * `cat` of a page-cached file of N MiB into the same directory (the floor), and `dd
#     oflag=direct` of it (the disk's floor without the page-cache copy),
# each written to the same filesystem (OUTDIR) after a `sync`, in a rotating order. Prints every
# run, then medians with min/max, the ratios capture/criu and capture/cat (medians), the frozen
# time of each tool (ckpt-capture's --json frozen_s; CRIU's stats-dump frozen_time), and the
# user/system CPU time of the tool and of the target (CRIU's parasite works inside the target).
# Then the image size for 512 MiB of written zeros, and (unless PRECOPY=0) pre-copy on N MiB with a writer rewriting 5% of the pages per second: the frozen
# time of `ckpt-capture --parent` after iterated `--pre` passes, against a full capture.
#
# usage: scripts/bench-capture.sh [OUTDIR] [SIZES_MiB...]   (default: target/bench-capture, 512 2048)
# env:   CKPT_CAPTURE=path to a release ckpt-capture (default: build it)
#        CRIU=path to criu (default: scripts/build-criu.sh); NO_CRIU=1 skips it
#        RUNS=n  runs per tool and size (default 5)
#        PRECOPY_MIB=N size of the pre-copy case (default: the largest size), RATE=5 (%/s);
#        PRECOPY=0 skips it; CKPT_RESTORE=path to ckpt-restore (restores the last chain)
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
    cargo build --release -q -p ckpt-capture -p ckpt-restore
    CKPT_CAPTURE=$TD/release/ckpt-capture
    CKPT_RESTORE=${CKPT_RESTORE:-$TD/release/ckpt-restore}
fi
if [[ "${NO_CRIU:-0}" != 1 && -z "${CRIU:-}" ]]; then
    CRIU=$(scripts/build-criu.sh)
fi
CRIT=
if [[ "${NO_CRIU:-0}" != 1 ]]; then
    CRIT=$(scripts/build-criu.sh --crit)
fi
cc -O2 -o "$OUT/memhog" fixtures/progs/memhog.c

HOG=
start_hog() { # $1 MiB, $2 rand|zero, $3 rewrite %/s -> sets HOG
    rm -f "$OUT/hog.out"
    setsid "$OUT/memhog" "$1" "$2" "${3:-0}" </dev/null >"$OUT/hog.out" 2>&1 &
    HOG=$!
    while ! grep -q ready "$OUT/hog.out" 2>/dev/null; do sleep 0.05; done
}
stop_hog() {
    if [[ -n "$HOG" ]]; then kill "$HOG" 2>/dev/null || true; wait "$HOG" 2>/dev/null || true; fi
    HOG=
}
trap stop_hog EXIT

# utime+stime of a process in seconds (user sys).
cpu_of() { awk '{print $14 / 100, $15 / 100}' "/proc/$1/stat"; }
# $1 - $2 with 3 decimals.
sub() { echo "$1 - $2" | bc -l | xargs printf '%.3f'; }
# "median (min-max)" of the numbers on stdin.
summ() {
    local v
    v=$(cat)
    printf '%.3f (%.3f-%.3f)' "$(echo "$v" | median)" "$(echo "$v" | sort -g | head -1)" \
        "$(echo "$v" | sort -g | tail -1)"
}

RUNS=${RUNS:-5}
summary="{"
for mb in $SIZES; do
    start_hog "$mb" rand
    head -c $((mb << 20)) /dev/urandom >"$OUT/src"
    cat "$OUT/src" >/dev/null
    declare -A T=() # T[tool,field] = space-separated list of run values
    add() { T[$1,$2]="${T[$1,$2]:-} $3"; }
    timed() { # $1 tool name, rest: command; records wall, user, sys of the command + target
        local tool=$1 t0 t1 c0 c1
        shift
        c0=$(cpu_of "$HOG")
        t0=$(now)
        /usr/bin/time -f '%U %S' -o "$OUT/time.txt" "$@"
        t1=$(now)
        c1=$(cpu_of "$HOG")
        add "$tool" wall "$(sub "$t1" "$t0")"
        read -r u s <"$OUT/time.txt"
        add "$tool" user "$u"
        add "$tool" sys "$s"
        read -r tu0 ts0 <<<"$c0"
        read -r tu1 ts1 <<<"$c1"
        add "$tool" target_cpu "$(sub "$(echo "$tu1 + $ts1" | bc -l)" "$(echo "$tu0 + $ts0" | bc -l)")"
    }
    run_capture() {
        rm -f "$OUT/img"; sync
        timed capture "$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json" ||
            { cat "$OUT/stats.json"; exit 1; }
        add capture frozen "$(sed -n 's/.*"frozen_s":\([0-9.e-]*\).*/\1/p' "$OUT/stats.json")"
        bytes=$(stat -c %s "$OUT/img")
        rm -f "$OUT/img"
    }
    run_buffered() { # ckpt-capture writing through the page cache (no O_DIRECT)
        rm -f "$OUT/img"; sync
        CKPT_DIRECT=0 timed buffered "$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json" ||
            { cat "$OUT/stats.json"; exit 1; }
        add buffered frozen "$(sed -n 's/.*"frozen_s":\([0-9.e-]*\).*/\1/p' "$OUT/stats.json")"
        rm -f "$OUT/img"
    }
    run_criu() {
        rm -rf "$OUT/criu"; mkdir "$OUT/criu"; sync
        timed criu "$CRIU" dump -t "$HOG" -D "$OUT/criu" --leave-running -o dump.log ||
            { cat "$OUT/criu/dump.log"; exit 1; }
        add criu frozen "$("$CRIT" show "$OUT/criu/stats-dump" |
            sed -n 's/.*"frozen_time": \([0-9]*\).*/\1/p' | awk '{print $1 / 1e6}')"
        criu_bytes=$(du -sb "$OUT/criu" | cut -f1)
        rm -rf "$OUT/criu"
    }
    run_cat() { # the shell that redirects is inside the timing (about a millisecond)
        rm -f "$OUT/dst"; sync
        timed cat sh -c 'cat "$1" >"$2"' sh "$OUT/src" "$OUT/dst"
        rm -f "$OUT/dst"
    }
    run_direct() { # the disk's own floor: the same bytes with O_DIRECT, no page-cache copy
        rm -f "$OUT/dst"; sync
        timed direct dd if="$OUT/src" of="$OUT/dst" bs=4M oflag=direct status=none
        rm -f "$OUT/dst"
    }
    tools=(capture buffered cat direct)
    if [[ -n "${CRIU:-}" && "${NO_CRIU:-0}" != 1 ]]; then tools=(capture buffered criu cat direct); fi
    n=${#tools[@]}
    for ((r = 0; r < RUNS; r++)); do # rotate the order: nobody always runs first
        for ((k = 0; k < n; k++)); do
            "run_${tools[(r + k) % n]}"
        done
    done
    stop_hog
    echo "anon $mb MiB, $RUNS runs each (median (min-max), seconds):"
    for t in "${tools[@]}"; do
        line="  $(printf '%-8s' "$t") wall $(echo "${T[$t,wall]}" | tr ' ' '\n' | grep . | summ)"
        if [[ $t == capture || $t == buffered || $t == criu ]]; then
            line+="  frozen $(echo "${T[$t,frozen]}" | tr ' ' '\n' | grep . | summ)"
        fi
        line+="  user $(echo "${T[$t,user]}" | tr ' ' '\n' | grep . | median)"
        line+=" sys $(echo "${T[$t,sys]}" | tr ' ' '\n' | grep . | median)"
        [[ $t == capture || $t == buffered || $t == criu ]] && line+="  target cpu $(echo "${T[$t,target_cpu]}" | tr ' ' '\n' | grep . | median)"
        echo "$line"
        echo "           runs: ${T[$t,wall]}"
    done
    med() { echo "${T[$1,$2]}" | tr ' ' '\n' | grep . | median; }
    cap=$(med capture wall)
    catt=$(med cat wall)
    r_cat=$(echo "$cap / $catt" | bc -l)
    printf '  capture/cat %.2f, capture/direct %.2f' "$r_cat" "$(echo "$cap / $(med direct wall)" | bc -l)"
    summary+=$(printf '"capture_%d_s":%.3f,"frozen_%d_s":%.3f,"cat_%d_s":%.3f,"ratio_cat_%d":%.2f,"image_%d_bytes":%d,' \
        "$mb" "$cap" "$mb" "$(med capture frozen)" "$mb" "$catt" "$mb" "$r_cat" "$mb" "$bytes")
    if [[ " ${tools[*]} " == *" criu "* ]]; then
        cr=$(med criu wall)
        r_criu=$(echo "$cap / $cr" | bc -l)
        printf ', capture/criu %.2f (criu image %d bytes)' "$r_criu" "$criu_bytes"
        summary+=$(printf '"criu_%d_s":%.3f,"criu_frozen_%d_s":%.3f,"ratio_criu_%d":%.2f,' \
            "$mb" "$cr" "$mb" "$(med criu frozen)" "$mb" "$r_criu")
    fi
    printf ', image %d bytes\n' "$bytes"
    rm -f "$OUT/src" "$OUT/dst" "$OUT/img"
done

start_hog 512 zero
t0=$(now)
"$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json"
t1=$(now)
stop_hog
zt=$(sub "$t1" "$t0")
zb=$(stat -c %s "$OUT/img")
printf 'zeros  512 MiB: capture %.3f s, image %d bytes (%s)\n' "$zt" "$zb" "$(cat "$OUT/stats.json")"
summary+=$(printf '"zeros_512_image_bytes":%d,"zeros_512_capture_s":%.3f' "$zb" "$zt")
rm -f "$OUT/img" "$OUT/hog.out" "$OUT/time.txt" "$OUT/stats.json"

if [[ "${PRECOPY:-1}" != 0 ]] && "$CKPT_CAPTURE" --help | grep -q -- '--pre'; then
    . scripts/bench-precopy.sh
fi
echo "$summary}"
