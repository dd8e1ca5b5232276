# Pre-copy case of scripts/bench-capture.sh (sourced by it, not run alone): PRECOPY_MIB
# (default: the largest size) of touched anonymous memory with a writer rewriting RATE % of
# the pages per second (default 5). Each of RUNS rounds times, interleaved, a full capture
# and a pre-copy chain: `--pre` passes (each an increment of the previous one) until the
# dirty set stops shrinking (at most 6), then the final `--parent` capture. Reports the
# frozen time of both, the final's wall time and pages, the passes. The last round's final
# capture uses --kill, the chain is restored, and the workload checks every page itself.
PMB=${PRECOPY_MIB:-$(printf '%s\n' $SIZES | sort -g | tail -1)}
RATE=${RATE:-5}
start_hog "$PMB" rand "$RATE"
js() { sed -n "s/.*\"$1\":\\([0-9.e-]*\\).*/\\1/p" "$2"; }
full_frozen=() fin_frozen=() fin_wall=() fin_pages=() passes=()
for ((r = 0; r < RUNS; r++)); do
    last=$((r == RUNS - 1))
    run_full() {
        rm -f "$OUT/img"; sync
        "$CKPT_CAPTURE" --json -o "$OUT/img" "$HOG" 2>"$OUT/stats.json"
        full_frozen+=("$(js frozen_s "$OUT/stats.json")")
        rm -f "$OUT/img"
    }
    run_chain() {
        rm -f "$OUT"/pre*.img "$OUT/final.img"; sync
        "$CKPT_CAPTURE" --pre --json -o "$OUT/pre1.img" "$HOG" 2>"$OUT/stats.json"
        local k=1 prev n
        prev=$(js pages_stored "$OUT/stats.json")
        while ((k < 6)); do
            "$CKPT_CAPTURE" --pre --parent "$OUT/pre$k.img" --json -o "$OUT/pre$((k + 1)).img" \
                "$HOG" 2>"$OUT/stats.json"
            k=$((k + 1))
            n=$(js pages_stored "$OUT/stats.json")
            ((n < prev)) || break
            prev=$n
        done
        passes+=("$k")
        local kill=()
        ((last)) && kill=(--kill)
        local t0 t1
        t0=$(now)
        "$CKPT_CAPTURE" --parent "$OUT/pre$k.img" "${kill[@]}" --json -o "$OUT/final.img" \
            "$HOG" 2>"$OUT/stats.json"
        t1=$(now)
        fin_wall+=("$(sub "$t1" "$t0")")
        fin_frozen+=("$(js frozen_s "$OUT/stats.json")")
        fin_pages+=("$(js pages_stored "$OUT/stats.json")")
        if ((last)); then
            wait "$HOG" 2>/dev/null || true
            HOG=
            local before pid
            before=$(wc -l <"$OUT/hog.out")
            pid=$("${CKPT_RESTORE:-$TD/release/ckpt-restore}" --pid-any "$OUT/final.img")
            sleep 0.5
            kill -USR1 "$pid"
            for _ in $(seq 100); do
                (($(wc -l <"$OUT/hog.out") > before)) && break
                sleep 0.1
            done
            kill -9 "$pid" 2>/dev/null || true
            verify=$(tail -1 "$OUT/hog.out")
        fi
        rm -f "$OUT"/pre*.img "$OUT/final.img"
    }
    # Alternate the order; the last round's chain kills the target, so it goes last.
    if ((r % 2 == 0 || last)); then run_full; run_chain; else run_chain; run_full; fi
done
stop_hog
echo "pre-copy $PMB MiB, writer $RATE%/s, $RUNS rounds (median (min-max), seconds):"
echo "  full capture frozen        $(printf '%s\n' "${full_frozen[@]}" | summ)"
echo "  final increment frozen     $(printf '%s\n' "${fin_frozen[@]}" | summ)  wall $(printf '%s\n' "${fin_wall[@]}" | summ)"
echo "  final pages stored         ${fin_pages[*]}; passes before it ${passes[*]}"
echo "  restore of the last chain: $verify"
summary+=$(printf ',"precopy_%d_full_frozen_s":%.3f,"precopy_%d_final_frozen_s":%.3f,"precopy_verify":"%s"' \
    "$PMB" "$(printf '%s\n' "${full_frozen[@]}" | median)" \
    "$PMB" "$(printf '%s\n' "${fin_frozen[@]}" | median)" "$verify")
