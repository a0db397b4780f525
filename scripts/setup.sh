#!/usr/bin/env bash
# Installs what de1d needs to build and test on a fresh Debian machine, beyond the Rust
# toolchain: cmake (paho-mqtt builds its C library with it), pkg-config, and the
# mosquitto broker and clients (the tests start their own broker on a free loopback port;
# `de1d --simulate` can spawn one too). Idempotent: installs only what is missing.
set -euo pipefail

packages=(cmake pkg-config mosquitto mosquitto-clients)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The Debian package enables a system-wide broker on port 1883; de1d does not need it
# (it can spawn a private one), but leave it alone if the user runs it.
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
echo "setup: ready"
