#!/bin/sh
# Restore every image of a directory after a kexec (docs/KEXEC-UPGRADE.md).
#
#   ckpt-restore-all.sh DIR
#
# For each DIR/*.ckpt, in name order: `ckpt-inspect check` (when installed) prints what the
# restore adapts to this kernel and what it refuses; then `ckpt-restore IMAGE`. A restored
# image moves to DIR/restored/, a refused one (exit 1: nothing was created) to
# DIR/refused/ with the reasons in IMAGE.why, so that the next boot does not try again and
# the image is kept (restore it on a kernel that accepts it, e.g. by booting the old one).
# Prints "restored IMAGE PID..." / "refused IMAGE" lines; exits 0 when every image was
# restored, 1 when one was refused, 3 when one failed otherwise. POSIX sh (busybox too).
set -u
dir=${1:?usage: ckpt-restore-all.sh DIR}
rc=0
mkdir -p "$dir/restored" "$dir/refused"
for img in "$dir"/*.ckpt; do
  [ -e "$img" ] || continue
  name=$(basename "$img")
  if command -v ckpt-inspect >/dev/null 2>&1; then
    ckpt-inspect check "$img" | sed "s|^|$name: |"
  fi
  if pids=$(ckpt-restore "$img" 2>"$dir/refused/$name.why"); then
    cat "$dir/refused/$name.why" >&2
    rm -f "$dir/refused/$name.why"
    mv "$img" "$dir/restored/$name"
    echo "restored $name" $pids
  else
    code=$?
    cat "$dir/refused/$name.why" >&2
    if [ "$code" = 1 ]; then
      mv "$img" "$dir/refused/$name"
      echo "refused $name (reasons in $dir/refused/$name.why)"
      [ "$rc" = 0 ] && rc=1
    else
      echo "failed $name (exit $code; image left in place)"
      rc=3
    fi
  fi
done
exit $rc
