#!/usr/bin/env bash
# Carry running processes across a kexec between real Debian kernels, under QEMU (TCG).
#
#   scripts/kexec-harness.sh [-r RUNS] [CASE...]        (root; docs/KEXEC-UPGRADE.md)
#
# CASE is one of: same update flavour lts downgrade (default: all five), each FROM -> TO:
#   same       6.1.0-47-amd64        -> 6.1.0-47-amd64
#   update     6.1.0-47-amd64        -> 6.1.0-53-amd64
#   flavour    6.1.0-53-amd64        -> 6.1.0-53-cloud-amd64
#   lts        6.1.0-47-amd64        -> 6.12.118+deb12-amd64
#   downgrade  6.12.118+deb12-amd64  -> 6.1.0-47-amd64
# A case boots FROM with an initramfs holding busybox, kexec-tools, the ckpt release binaries
# and four self-checking workloads (fixtures/progs/kexec_workload.c single-threaded and with
# 4 threads, fixtures/progs/kexec_workload.py under python3, and
# fixtures/progs/restore_evloop.c with timerfds and a signalfd, whose state capture reads from
# FROM's /proc fdinfo and restore re-creates on TO; not its eventfds: 6.1 does not show their
# semaphore flag and capture refuses them there), captures them to /persist with
# `ckpt-capture --kill`, loads TO with `kexec -l` and an initramfs carrying /persist, runs
# `kexec -e`, and on TO restores every image with `ckpt-restore` — the commands of the
# recipe in docs/KEXEC-UPGRADE.md. Each workload checks its memory and its vdso clock calls
# on every step and prints PASS or FAIL on the serial console, which this script reads.
#
# Installs what it needs (apt: qemu-system-x86 busybox-static kexec-tools cpio gcc), fetches
# the kernels with `apt-get download` (no install) and unpacks them with `dpkg-deb -x` into
# target/kexec/ (cached). Logs: target/kexec/logs/CASE-RUN.log (host time stamp per line).
# Prints one line per run with the downtime split into capture, kexec load, kernel boot to
# init, restore; exits 0 when every run of every case passed, 1 otherwise, 2 on usage.
#
# Environment: KEXEC_TIMEOUT (seconds per run, default 900), KEXEC_MEM (MiB, default 2048),
# KEXEC_RUN_SECONDS (workload time on FROM before the capture, default 6).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
runs=1
while getopts "r:h" o; do
  case $o in
    r) runs=$OPTARG ;;
    *) sed -n '2,/^set -e/p' "$0" | sed 's/^# \{0,1\}//;$d'; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(same update flavour lts downgrade)

K47=6.1.0-47-amd64
K53=6.1.0-53-amd64
K53C=6.1.0-53-cloud-amd64
K612=6.12.118+deb12-amd64
case_kernels() {
  case $1 in
    same) echo "$K47 $K47" ;;
    update) echo "$K47 $K53" ;;
    flavour) echo "$K53 $K53C" ;;
    lts) echo "$K47 $K612" ;;
    downgrade) echo "$K612 $K47" ;;
    *) echo "unknown case $1 (same update flavour lts downgrade)" >&2; exit 2 ;;
  esac
}
for c in "${cases[@]}"; do case_kernels "$c" >/dev/null; done

W=${KEXEC_DIR:-$ROOT/target/kexec}
mkdir -p "$W/debs" "$W/kernels" "$W/logs"

# --- what the harness needs on the host ------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx cpio || need+=(busybox-static)
command -v kexec >/dev/null || need+=(kexec-tools)
command -v cpio >/dev/null || need+=(cpio)
command -v cc >/dev/null || need+=(gcc)
[ -x /usr/bin/python3.11 ] || need+=(python3.11)
if [ ${#need[@]} -gt 0 ]; then
  echo "== apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# --- kernels: apt-get download + dpkg-deb -x, never installed --------------------------------
kernel() { # VERSION -> path of its vmlinuz (downloaded and unpacked once)
  local v=$1 d="$W/kernels/$1"
  if [ ! -s "$d/vmlinuz" ]; then
    local pkg=linux-image-$v
    if ! ls "$W/debs/${pkg}_"*.deb >/dev/null 2>&1; then
      (cd "$W/debs" && apt-get download "$pkg" >/dev/null 2>&1) || {
        apt-get update -qq
        (cd "$W/debs" && apt-get download "$pkg") >&2 || { echo "cannot download $pkg" >&2; exit 3; }
      }
    fi
    rm -rf "$d.x" && mkdir -p "$d.x"
    dpkg-deb -x "$W/debs/${pkg}_"*.deb "$d.x"
    mkdir -p "$d" && cp "$d.x/boot/vmlinuz-$v" "$d/vmlinuz" && rm -rf "$d.x"
  fi
  echo "$d/vmlinuz"
}

# --- the base initramfs: the same archive, in the same order, on both sides ------------------
echo "== building the ckpt release binaries and the workloads"
cargo build --release -q -p ckpt-capture -p ckpt-restore -p ckpt-inspect
TD=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
R="$W/root"
rm -rf "$R" && mkdir -p "$R"/{bin,sbin,proc,sys,dev,tmp,persist,opt/kexec,kexec}
copy_with_libs() { # copy each program and the shared libraries ldd names
  local f l
  for f in "$@"; do
    mkdir -p "$R$(dirname "$f")" && cp -L "$f" "$R$f"
    for l in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
      [ -e "$R$l" ] || { mkdir -p "$R$(dirname "$l")" && cp -L "$l" "$R$l"; }
    done
  done
}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
mkdir -p "$R/usr/local/bin"
# Stripped: the initramfs is unpacked by an emulated CPU, every megabyte costs boot time.
strip -o "$R/usr/local/bin/ckpt-capture" "$TD/release/ckpt-capture"
strip -o "$R/usr/local/bin/ckpt-restore" "$TD/release/ckpt-restore"
strip -o "$R/usr/local/bin/ckpt-inspect" "$TD/release/ckpt-inspect"
cp scripts/ckpt-restore-all.sh "$R/usr/local/bin/ckpt-restore-all"
copy_with_libs /usr/sbin/kexec
for f in "$TD/release/ckpt-capture" "$TD/release/ckpt-restore" "$TD/release/ckpt-inspect"; do
  for l in $(ldd "$f" | grep -o '/[^ ]*'); do
    [ -e "$R$l" ] || { mkdir -p "$R$(dirname "$l")" && cp -L "$l" "$R$l"; }
  done
done
cc -O2 -Wall -pthread -o "$R/opt/kexec/kexec_workload" fixtures/progs/kexec_workload.c
# The event-loop objects (their /proc fdinfo formats read on FROM, re-created on TO).
cc -O2 -Wall -o "$R/opt/kexec/restore_evloop" fixtures/progs/restore_evloop.c
for l in $(ldd "$R/opt/kexec/restore_evloop" | grep -o '/[^ ]*'); do
  [ -e "$R$l" ] || { mkdir -p "$R$(dirname "$l")" && cp -L "$l" "$R$l"; }
done
copy_with_libs /usr/bin/python3.11
for l in $(ldd "$R/opt/kexec/kexec_workload" | grep -o '/[^ ]*'); do
  [ -e "$R$l" ] || { mkdir -p "$R$(dirname "$l")" && cp -L "$l" "$R$l"; }
done
cp fixtures/progs/kexec_workload.py "$R/opt/kexec/"
# The part of the standard library python imports (no site, no compiled caches).
mkdir -p "$R/usr/lib/python3.11/lib-dynload"
cp /usr/lib/python3.11/*.py "$R/usr/lib/python3.11/"
for p in encodings importlib collections re json; do
  (cd /usr/lib/python3.11 && find "$p" -name '*.py' -print0 | cpio -0 -pdm --quiet "$R/usr/lib/python3.11")
done
cp scripts/kexec-init.sh "$R/init" && chmod +x "$R/init"
# Sorted, so both kernels create the inodes of rootfs in the same order (below).
(cd "$R" && find . -path ./kexec -prune -o -print | LC_ALL=C sort | cpio -o -H newc --quiet) |
  gzip -1 >"$W/base.cpio.gz"
echo "== base initramfs $(stat -c %s "$W/base.cpio.gz") bytes"

pad4() { # append zeros to FILE up to a multiple of 4 bytes
  local n; n=$(stat -c %s "$1")
  head -c $(((4 - n % 4) % 4)) /dev/zero >>"$1"
}

# --- one run of one case ---------------------------------------------------------------------
results=()
fails=0
run_case() {
  local c=$1 n=$2 from to kf kt img log
  read -r from to < <(case_kernels "$c")
  kf=$(kernel "$from")
  kt=$(kernel "$to")
  # FROM's initramfs: the base, then (uncompressed, 4-byte aligned) the TO kernel and the base
  # again, which FROM's init extends with /persist for TO.
  img="$W/from-$c.img"
  cp "$W/base.cpio.gz" "$img" && pad4 "$img"
  rm -rf "$W/payload" && mkdir -p "$W/payload/kexec"
  cp "$kt" "$W/payload/kexec/vmlinuz" && cp "$W/base.cpio.gz" "$W/payload/kexec/base.cpio.gz"
  (cd "$W/payload" && find kexec | LC_ALL=C sort | cpio -o -H newc --quiet) >>"$img"
  log="$W/logs/$c-$n.log"
  echo "== $c run $n: $from -> $to"
  local t0; t0=$(date +%s.%N)
  timeout "${KEXEC_TIMEOUT:-900}" qemu-system-x86_64 -machine q35 -accel tcg -cpu max \
    -m "${KEXEC_MEM:-2048}" -smp 1 -nographic -no-reboot -kernel "$kf" -initrd "$img" \
    -append "console=ttyS0 panic=-1 quiet ckpt.role=from ckpt.run=${KEXEC_RUN_SECONDS:-6}" \
    </dev/null 2>&1 | perl -MTime::HiRes=time -ne '$|=1; s/\r//g; printf "%.3f %s", time, $_' >"$log" || true
  local t1; t1=$(date +%s.%N)
  # Parse: every workload PASSed on TO, none FAILed; durations between the markers.
  local pass fail_l ts line
  pass=$(grep -c 'KEXEC-WORKLOAD .* PASS' "$log" || true)
  fail_l=$(grep -a -m1 -e 'KEXEC-WORKLOAD .* FAIL' -e '@@ error' -e 'Kernel panic' "$log" || true)
  mark() { grep -a -m1 " @@ $1" "$log" | cut -d' ' -f1; }
  local cs ce ls le ke ti rs re
  cs=$(mark capture-start); ce=$(mark capture-end); ls=$(mark load-start); le=$(mark load-end)
  ke=$(mark kexec-e); ti=$(mark "init to"); rs=$(mark restore-start); re=$(mark restore-end)
  d() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}' || echo "-"; }
  local status=FAIL
  if [ "$pass" -eq 4 ] && [ -z "$fail_l" ] && grep -aq ' @@ init to' "$log"; then status=PASS; fi
  line=$(printf '%-9s %s -> %s  %s  capture %ss  kexec-load %ss  boot-to-init %ss  restore %ss  downtime %ss  (run %ss, %s/4 PASS)' \
    "$c" "$from" "$to" "$status" "$(d "$cs" "$ce")" "$(d "$ls" "$le")" "$(d "$ke" "$ti")" \
    "$(d "$rs" "$re")" "$(d "$cs" "$re")" "$(d "$t0" "$t1")" "$pass")
  echo "$line"
  [ "$status" = PASS ] || { fails=$((fails + 1)); echo "   ${fail_l:-no PASS from every workload}; log: $log"; }
  results+=("$line")
}

for n in $(seq 1 "$runs"); do
  for c in "${cases[@]}"; do run_case "$c" "$n"; done
done
echo "== summary"
printf '%s\n' "${results[@]}"
[ "$fails" -eq 0 ]
