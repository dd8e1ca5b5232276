# Shared by the scripts/bench-*.sh benchmarks (sourced, not run).

# Seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# The median of the numbers on stdin, one per line (the upper one of an even count).
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
