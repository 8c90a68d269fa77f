#!/bin/sh
# PID 1 of vc's test VM. `cargo xtask vm-setup` bakes this file into the initramfs as /init;
# vc_testkit::vm boots it (see vc-testkit/src/vm/).
#
# Stage 1 (busybox, inside the initramfs): load the virtio/9p/overlay modules, mount the host's
#   root read-only over 9p as the lower layer of an overlay whose upper layer is guest RAM, so
#   the guest sees every host path (test binaries, ip, charon, bird) and may write anywhere
#   without touching the host. Mount the guest kernel's modules and the run's results dir (the
#   only host dir the guest can write), then switch_root into the overlay and run this same
#   file again as stage 2. switch_root, not chroot: the kernel's module autoloader runs
#   /sbin/modprobe relative to the real root, and it must find the host's kmod there.
# Stage 2 (the host's /bin/sh): finish the mounts, run vcrun=<script> with its output in
#   <results>/output.log, write rc and timing next to it, power off.
#
# Kernel command line: vcrun=/abs/run.sh vcresults=/abs/results/dir (absolute paths without
# spaces). Without vcrun= the guest starts a root shell on the serial console instead.
# With vcinit=systemd, stage 2 hands PID 1 to systemd, which runs the script as the unit
# vc-vm-run.service once basic.target is reached (the system's early units: journald,
# tmpfiles, which empties /tmp, ...; no multi-user.target) and powers off after it: for tests
# of vc as a systemd service.
#
# `sh /run/vm-init record` (stage 2's helper, also the unit's command): runs vcrun= with its
# output in <results>/output.log, writes rc and timing next to it.

cmdline_arg() { # the value of key=value on the kernel command line; dotted keys would
  # not reach init's environment, so read /proc/cmdline rather than the environment
  for a in $(cat /proc/cmdline); do
    case "$a" in "$1"=*) echo "${a#*=}"; return ;; esac
  done
}

if [ "${1:-}" != stage2 ] && [ "${1:-}" != record ]; then
  export PATH=/bin
  /bin/busybox --install -s /bin
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  # virtio, 9p and overlay are modules in Debian's kernel; the list is in load order
  for m in $(cat /modules/order); do
    insmod "/modules/$m" || echo "init: insmod $m failed"
  done
  RESULTS=$(cmdline_arg vcresults)
  P9="trans=virtio,version=9p2000.L,msize=512000"
  # cache=loose is safe (the host tree does not change under a run) and makes exec and stat
  # over 9p much faster
  mount -t 9p -o "$P9,ro,cache=loose" hostroot /lower || {
    echo "init: cannot mount the host root over 9p"; echo o > /proc/sysrq-trigger; exec sleep 60
  }
  mount -t tmpfs -o mode=755 tmpfs /upper
  mkdir -p /upper/data /upper/work
  mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot
  # A private /run (netns mounts, pid files, sockets). /tmp stays the overlay's: a fresh tmpfs
  # there would hide host paths under /tmp (checkouts, test binaries).
  mount -t tmpfs -o mode=755 tmpfs /newroot/run
  # /lib is a symlink to usr/lib on bookworm, and the host has no modules for this kernel
  mkdir -p /newroot/usr/lib/modules
  mount -t 9p -o "$P9,ro" modules /newroot/usr/lib/modules
  if [ -n "$RESULTS" ]; then
    mkdir -p "/newroot$RESULTS"
    # cache=none: what the guest writes reaches the host at once, even if the guest dies
    mount -t 9p -o "$P9" results "/newroot$RESULTS"
  fi
  for d in dev proc sys; do mount --move "/$d" "/newroot/$d"; done
  cp /init /newroot/run/vm-init
  exec switch_root /newroot /bin/sh /run/vm-init stage2
fi

# ---- stage 2: the root is the overlay; the host's userland from here on ----
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root

if [ "${1:-}" = record ]; then
  RUN=$(cmdline_arg vcrun)
  RESULTS=$(cmdline_arg vcresults)
  cd "$RESULTS"
  T0=$(cut -d' ' -f1 /proc/uptime)
  echo "init: running $RUN at uptime ${T0}s"
  # The output goes to a file, never through a pipe: a daemon the test leaves running would
  # hold a pipe open and the guest would never power off.
  sh "$RUN" > output.log 2>&1 < /dev/null
  echo $? > rc
  T1=$(cut -d' ' -f1 /proc/uptime)
  echo "$T0 $T1" | awk '{ printf "boot_s=%s test_s=%.2f\n", $1, $2 - $1 }' > timing
  echo "init: rc=$(cat rc) $(cat timing)"
  sync
  exit 0
fi
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing
hostname vm
ip link set lo up

RUN=$(cmdline_arg vcrun)
RESULTS=$(cmdline_arg vcresults)
if [ -n "$RUN" ] && [ "$(cmdline_arg vcinit)" = systemd ]; then
  mkdir -p /run/systemd/system
  cat > /run/systemd/system/vc-vm-run.service <<UNIT
[Unit]
Description=vc test VM: $RUN
# default dependencies: after basic.target, so no unit the test starts triggers the early
# boot (tmpfiles would empty /tmp under the test's feet)
SuccessAction=poweroff-immediate
FailureAction=poweroff-immediate

[Service]
Type=oneshot
Environment=HOME=/root
ExecStart=/bin/sh /run/vm-init record
StandardOutput=journal+console
UNIT
  exec /lib/systemd/systemd --unit=vc-vm-run.service
fi
if [ -z "$RUN" ]; then
  echo "init: no vcrun= given: root shell on the console (exit it to power off)"
  [ -z "$RESULTS" ] || cd "$RESULTS"
  setsid sh -c 'exec sh </dev/ttyS0 >/dev/ttyS0 2>&1'
else
  sh /run/vm-init record
  # stop what the test left behind (daemons, captures); PID 1 is spared
  kill -TERM -1 2>/dev/null
fi
sync
mkfifo /run/vm-halt
echo o > /proc/sysrq-trigger # ACPI power off: QEMU exits
# PID 1 must not exit (the kernel would panic) nor exec anything (9p is going away): wait on a
# FIFO nobody writes, with a shell builtin.
read -r _ < /run/vm-halt
