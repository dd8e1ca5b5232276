#!/bin/sh
# /init of the initramfs built by scripts/kexec-harness.sh (busybox sh, pid 1).
# ckpt.role=from: start the workloads, capture them to /persist, kexec into /kexec/vmlinuz
# with an initramfs carrying /persist. ckpt.role=to: restore every /persist/*.ckpt and wait
# for the workloads to finish. Lines starting with "@@" are the markers the harness times.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
role=
run=6
for a in $(cat /proc/cmdline); do
  case $a in
    ckpt.role=*) role=${a#ckpt.role=} ;;
    ckpt.run=*) run=${a#ckpt.run=} ;;
  esac
done
echo "@@ init $role $(uname -r)"
off() { sync; echo o >/proc/sysrq-trigger; sleep 10; }

if [ "$role" = from ]; then
  cd /
  /opt/kexec/kexec_workload counter 0 8 boot:20 &
  echo $! >/tmp/pid.counter
  /opt/kexec/kexec_workload threads 4 2 boot:20 &
  echo $! >/tmp/pid.threads
  /usr/bin/python3.11 -I -S /opt/kexec/kexec_workload.py python 20 &
  echo $! >/tmp/pid.python
  # Its output goes to /persist, which TO's initramfs carries: the restored process goes on
  # writing there at its offset, and TO reads the verdict from it.
  # timerfds and a signalfd only: 6.1's eventfd fdinfo has no `eventfd-semaphore:` line, so
  # capture refuses every eventfd there (the flag cannot be told; never guessed), and this
  # workload's epoll sets hold eventfds.
  /opt/kexec/restore_evloop 2500 timerfd,signalfd >/persist/evloop.out &
  echo $! >/tmp/pid.evloop
  sleep "$run"
  # The recipe (docs/KEXEC-UPGRADE.md): capture to a persistent place, then kexec.
  echo "@@ capture-start"
  for w in counter threads python evloop; do
    # (stderr to a file: on a terminal ckpt-capture draws a progress bar)
    ckpt-capture --kill -o /persist/$w.ckpt "$(cat /tmp/pid.$w)" 2>/tmp/capture.$w ||
      echo "@@ error capture $w"
    tail -n 3 /tmp/capture.$w
  done
  echo "@@ capture-end"
  echo "@@ load-start"
  # TO's initramfs: the base archive, zeros up to a 4-byte boundary (the kernel looks for a
  # following archive only there), then /persist as an uncompressed cpio.
  cp /kexec/base.cpio.gz /tmp/to.img
  n=$(stat -c %s /tmp/to.img)
  head -c $(((4 - n % 4) % 4)) /dev/zero >>/tmp/to.img
  find persist | cpio -o -H newc >>/tmp/to.img 2>/dev/null
  kexec -l /kexec/vmlinuz --initrd=/tmp/to.img \
    --append="console=ttyS0 panic=-1 quiet ckpt.role=to" || echo "@@ error kexec-load"
  echo "@@ load-end"
  echo "@@ kexec-e"
  kexec -e
  echo "@@ error kexec-e"
  off
fi

if [ "$role" = to ]; then
  cd /
  echo "@@ restore-start"
  # The recipe's restore step: check (adaptations, refusals) and restore every image.
  ckpt-restore-all /persist >/tmp/restored || echo "@@ error restore-all exit $?"
  echo "@@ restore-end"
  cat /tmp/restored
  pids=$(grep '^restored ' /tmp/restored | cut -d' ' -f3-)
  # Wait for the restored workloads to finish (they print PASS/FAIL themselves).
  t=0
  while [ $t -lt 600 ]; do
    live=0
    for p in $pids; do
      [ -r /proc/$p/stat ] && [ "$(cut -d' ' -f3 /proc/$p/stat)" != Z ] && live=1
    done
    [ $live = 0 ] && break
    sleep 1
    t=$((t + 1))
  done
  # restore_evloop prints each step to /persist/evloop.out, then PASS or FAIL.
  if [ "$(tail -n 1 /persist/evloop.out)" = PASS ] && ! grep -q FAIL /persist/evloop.out; then
    echo "KEXEC-WORKLOAD evloop $(grep -c ' ok$' /persist/evloop.out) steps PASS"
  else
    echo "KEXEC-WORKLOAD evloop FAIL: $(grep -m1 FAIL /persist/evloop.out || tail -n 1 /persist/evloop.out)"
  fi
  echo "@@ done"
fi
off
