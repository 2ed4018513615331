#!/usr/bin/env bash
# Builds the Debian packages dronecast-drone, dronecast-cache-server and dronecast-client into
# target/debian/ (target/<triple>/debian/ for another target; $CARGO_TARGET_DIR is honoured),
# from a fresh clone:
#   1. the release binaries (the drone with camera support, which needs libclang-dev);
#   2. their --help text, for /usr/share/doc, as the installed command prints it;
#   3. `cargo deb --no-build --strip` for each crate (cargo-deb 3: cargo install cargo-deb --locked).
#
# Environment:
#   PACKAGES  which to build (default: "drone cache-server client"); a Pi needs only "drone"
#   TARGET    a Rust target triple to cross-build for (default: this machine)
#   BUILD     the build command (default: "cargo build"; "cargo zigbuild" or "cross build"
#             for TARGET, see docs/RASPBERRY-PI.md)
set -euo pipefail
cd "$(dirname "$0")/.."

read -r -a crates <<<"${PACKAGES:-drone cache-server client}"
read -r -a build <<<"${BUILD:-cargo build}"
target="${TARGET:-}"

command -v cargo-deb >/dev/null || {
  echo "cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}

build_args=(--release --locked)
for crate in "${crates[@]}"; do
  build_args+=(-p "$crate")
  # The Pi's drone captures from its camera.
  if [ "$crate" = drone ]; then build_args+=(--features drone/camera); fi
done

target_dir="${CARGO_TARGET_DIR:-target}"
release="$target_dir/release"
target_args=()
if [ -n "$target" ]; then
  release="$target_dir/$target/release"
  target_args=(--target "$target")
fi
"${build[@]}" "${build_args[@]}" "${target_args[@]}"

# The --help text: run under its installed name (clap's usage line shows the name it was
# started as), in an empty environment (a DRONE_* variable set here would show up in it). A
# cross-built binary cannot run here: its text comes from this machine's build of the source.
help_from="$release"
if [ -n "$target" ]; then
  cargo build "${build_args[@]}"
  help_from="$target_dir/release"
fi
mkdir -p "$release/package/bin"
for crate in "${crates[@]}"; do
  ln -sf "$(realpath "$help_from/$crate")" "$release/package/bin/dronecast-$crate"
  env -i "$release/package/bin/dronecast-$crate" --help >"$release/package/dronecast-$crate.help.txt"
done

# Stripped: the release profile keeps line tables for backtraces, which would make each
# binary 25-35 MB instead of 3-5.
for crate in "${crates[@]}"; do
  cargo deb --no-build --locked --strip -p "$crate" "${target_args[@]}"
done
