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
# rustc links x86_64-unknown-linux-gnu with its own lld from 1.90 on; the symbol-ordering
# file is an lld option (GNU ld would refuse it).
lld_default() {
    [ "$host" = x86_64-unknown-linux-gnu ] && ver "$(rustc -V | awk '{print $2}')" 1.90
}
export RUSTFLAGS="$flags" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH="$libdir"
cargo build --release --quiet --target "$host" --bin strata-image >&2
# The runtime's own code optimized for size: a start touches scattered code, and each
# fault maps the 64 KiB around it (fault-around), so the resident set follows the code's
# size. opt-level "s" takes 0.4 MiB off the text and ~200 KiB off `run`'s peak RSS at no
# measurable CPU cost (bench/README.md). strata-image keeps opt-level 3 (its deflate).
# (A package override drops the profile's strip unless it is repeated.)
# The functions a container start runs are laid out together, in the order they first run
# (bundles/order/strata.order, from a trace of the lifecycle commands): they then fill
# ~0.7 MB of the text instead of being spread over all 3 MB of it, and `run`'s peak RSS
# drops from ~3.0 to ~1.5 MiB (bench/README.md). Only the strata binary gets it (`cargo
# rustc`: the dependencies are not rebuilt). A symbol the file names that is gone (renamed
# code, another rustc) is skipped; bundles/order/make.sh regenerates the file.
# STRATA_SYMBOLS=1 keeps the symbol table (what make.sh traces) with a flag on the final
# link only: the profile's strip setting is part of the crate's hash, and so of every
# symbol name the file lists.
order=bundles/order/strata.order
link=()
# lld names each listed symbol it cannot find; rustc shows that with linker-messages.
lld_default && link+=(-C "link-arg=-Wl,--symbol-ordering-file=$PWD/$order" -W linker-messages)
[ -z "${STRATA_SYMBOLS:-}" ] || link+=(-C strip=none)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo rustc --release --quiet --target "$host" --bin strata \
    --config 'profile.release.package.strata.opt-level="s"' \
    --config 'profile.release.package.strata.strip=true' -- "${link[@]}" 2>"$log" \
    || { cat "$log" >&2; exit 1; }
gone=$(grep -o 'no such symbol: [^ ]*' "$log" | wc -l || true)
grep -v -e 'no such symbol' -e 'linker stderr' -e 'linker-messages' -e 'generated 1 warning' \
    -e '^ *|* *$' "$log" >&2 || true
if [ "$gone" -gt 0 ]; then
    echo "build-static.sh: $gone of the $(wc -l < "$order") functions in $order are gone" \
        "from the code (renamed, or another rustc); bundles/order/make.sh regenerates it" >&2
fi
echo "$PWD/target/$host/release/strata"
