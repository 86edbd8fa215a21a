#!/usr/bin/env bash
# Build the shipped strata: static glibc and static libseccomp (no dynamic loader on each
# exec, no runtime dependency on the host's libseccomp). Prints the binary's path.
# --target keeps crt-static off the build's proc-macros. Needs libseccomp-dev.
# pack-relative-relocs (DT_RELR): a static-pie binary relocates itself at every start;
# packed, its ~10k relative relocations cost a few KiB instead of 250 KiB to read, and
# `run` peaks about 240 KiB lower. It stays position-independent (ASLR kept).
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
libdir=$(pkg-config --variable=libdir libseccomp 2>/dev/null || echo "/usr/lib/$(gcc -print-multiarch)")
flags="-C target-feature=+crt-static"
# Static glibc applies packed relocations itself only from 2.36 on (an older one would
# crash at start), and ld writes them from binutils 2.38 on.
ver() { printf '%s\n' "$2" "$1" | sort -V -C; } # ver A B: A >= B
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
binutils=$(ld --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+' | head -1)
if ver "${glibc:-0}" 2.36 && ver "${binutils:-0}" 2.38; then
    flags="$flags -C link-arg=-Wl,-z,pack-relative-relocs"
fi
export RUSTFLAGS="$flags" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$libdir"
cargo build --release --quiet --target "$host" --bin strata-image >&2
# The runtime's own code optimized for size: a start touches scattered code, and each
# fault maps the 64 KiB around it (fault-around), so the resident set follows the code's
# size. opt-level "s" takes 0.4 MiB off the text and ~200 KiB off `run`'s peak RSS at no
# measurable CPU cost (bench/README.md). strata-image keeps opt-level 3 (its deflate).
# (A package override drops the profile's strip unless it is repeated.)
cargo build --release --quiet --target "$host" --bin strata \
    --config 'profile.release.package.strata.opt-level="s"' \
    --config 'profile.release.package.strata.strip=true' >&2
echo "$PWD/target/$host/release/strata"
