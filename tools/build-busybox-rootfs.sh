#!/usr/bin/env bash
# Build a minimal root filesystem from Debian's busybox-static: tools/build-busybox-rootfs.sh DIR
set -euo pipefail
rootfs=${1:?usage: build-busybox-rootfs.sh DIR}
busybox=${BUSYBOX:-/bin/busybox}
mkdir -p "$rootfs"/{bin,dev,etc,proc,sys,tmp,root}
cp "$busybox" "$rootfs/bin/busybox"
# --install inside the rootfs, so the links point at /bin/busybox of the container.
chroot "$rootfs" /bin/busybox --install -s /bin
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
