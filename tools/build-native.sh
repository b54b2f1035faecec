#!/usr/bin/env bash
# Build cove's two small C helpers into OUTDIR:
#   cove-monitor  the per-container supervisor (dynamically linked: it shares libc pages)
#   cove-init     the `--init` process run as PID 1 inside containers (static: no libc there)
# Each binary is written under a temporary name and renamed, so a reader never sees half a file.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

outdir=$1
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../native" && pwd)
cc=${CC:-gcc}
cflags=(-std=gnu11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE)

mkdir -p "$outdir"

build() {  # build NAME [EXTRA_FLAGS...]
    local name=$1
    shift
    local tmp
    tmp=$(mktemp "$outdir/.$name.XXXXXX")
    if ! "$cc" "${cflags[@]}" "$@" -o "$tmp" "$src/$name.c"; then
        rm -f "$tmp"
        echo "build-native: compiling $name failed" >&2
        return 1
    fi
    chmod 0755 "$tmp"
    mv -f "$tmp" "$outdir/$name"
}

build cove-monitor
build cove-init -static
