#!/usr/bin/env bash
# Installs de1d as a systemd service on Debian or Raspberry Pi OS.
#
#   sudo deploy/install.sh [--binary PATH] [--no-mosquitto] [--no-enable] [--start]
#   deploy/install.sh --root DIR [--binary PATH]     # stage the files under DIR only
#
# What it does (each step only if needed, so running it again is safe, e.g. to upgrade):
#   * installs the Debian packages bluez, logrotate and mosquitto if missing;
#   * creates the system user `de1d` (group `de1d`), member of `bluetooth`;
#   * installs the binary as /usr/local/bin/de1d (replaced atomically: a running de1d
#     keeps its old binary until it is restarted);
#   * installs /etc/de1d/de1d.toml from deploy/de1d.toml only if that file does not exist
#     (an existing configuration is never overwritten); the shipped example is always
#     refreshed as /etc/de1d/de1d.toml.example;
#   * installs the systemd unit, the logrotate configuration, the mosquitto snippet
#     (/etc/mosquitto/conf.d/de1d.conf, only if missing) and the documentation;
#   * checks the configuration with `de1d config show`;
#   * runs `systemctl daemon-reload` and enables de1d.service (and mosquitto.service).
# It does not start or restart de1d unless asked with --start, so that an upgrade never
# interrupts a shot; restart it yourself with `sudo systemctl restart de1d`.
#
# --binary PATH   the de1d executable; default: the first of target/release/de1d,
#                 target/aarch64-unknown-linux-gnu/release/de1d and
#                 target/armv7-unknown-linux-gnueabihf/release/de1d in this checkout
# --no-mosquitto  neither install mosquitto nor its snippet (for another broker)
# --no-enable     do not enable de1d.service
# --start         start de1d.service at the end, or restart it if it is running
# --root DIR      install the files under DIR instead of /, without packages, user,
#                 ownership or systemctl (for inspecting or packaging)
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)

binary=""
with_mosquitto=1
enable=1
start=0
root=""

die() { echo "install: $*" >&2; exit 1; }
say() { echo "install: $*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
        --binary=*) binary=${1#--binary=}; shift ;;
        --no-mosquitto) with_mosquitto=0; shift ;;
        --no-enable) enable=0; shift ;;
        --start) start=1; shift ;;
        --root) [ $# -ge 2 ] || die "--root needs a directory"; root=$2; shift 2 ;;
        --root=*) root=${1#--root=}; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done

if [ -n "$root" ]; then
    mkdir -p "$root"
    root=$(cd "$root" && pwd)
    [ "$root" != / ] || root=""
    staging=1
else
    staging=0
    [ "$(id -u)" -eq 0 ] || die "run as root (with sudo), or use --root DIR"
fi

# Paths on the target system.
bin_path=/usr/local/bin/de1d
conf_dir=/etc/de1d
conf_path=$conf_dir/de1d.toml
unit_path=/etc/systemd/system/de1d.service
logrotate_path=/etc/logrotate.d/de1d
mosquitto_dir=/etc/mosquitto/conf.d
mosquitto_path=$mosquitto_dir/de1d.conf
doc_dir=/usr/local/share/doc/de1d
state_dir=/var/lib/de1d
log_dir=/var/log/de1d

for f in de1d.service de1d.toml logrotate.d/de1d mosquitto/de1d.conf; do
    [ -f "$script_dir/$f" ] || die "missing $script_dir/$f"
done

if [ -z "$binary" ]; then
    for candidate in \
        "$repo_dir/target/release/de1d" \
        "$repo_dir/target/aarch64-unknown-linux-gnu/release/de1d" \
        "$repo_dir/target/armv7-unknown-linux-gnueabihf/release/de1d"; do
        if [ -x "$candidate" ]; then binary=$candidate; break; fi
    done
    [ -n "$binary" ] || die "no de1d binary found; build it (cargo build --release) or pass --binary PATH"
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "$binary is not an executable file"
fi
if ! version=$("$binary" --version 2>/dev/null); then
    die "$binary does not run on this machine (built for another architecture?)"
fi
say "installing $version from $binary"

# --- packages -------------------------------------------------------------------------
if [ "$staging" -eq 0 ]; then
    packages=(bluez logrotate)
    [ "$with_mosquitto" -eq 0 ] || packages+=(mosquitto)
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# --- user -----------------------------------------------------------------------------
if [ "$staging" -eq 0 ]; then
    if ! getent passwd de1d >/dev/null; then
        say "creating the system user de1d"
        useradd --system --user-group --home-dir "$state_dir" --no-create-home \
            --shell /usr/sbin/nologin --comment "de1d espresso controller" de1d
    fi
    if getent group bluetooth >/dev/null; then
        if ! id -nG de1d | tr ' ' '\n' | grep -qx bluetooth; then
            say "adding de1d to the bluetooth group"
            usermod -a -G bluetooth de1d
        fi
    else
        say "warning: no bluetooth group (is bluez installed?); de1d may not reach BlueZ"
    fi
fi

# install_file MODE OWNER:GROUP SOURCE TARGET: copies atomically (temporary file, rename).
install_file() {
    local mode=$1 owner=$2 src=$3 dst=$root$4
    mkdir -p "$(dirname "$dst")"
    local tmp
    tmp=$(mktemp "$dst.XXXXXX")
    cp "$src" "$tmp"
    chmod "$mode" "$tmp"
    [ "$staging" -eq 1 ] || chown "$owner" "$tmp"
    mv -f "$tmp" "$dst"
}

# install_dir MODE OWNER:GROUP DIR
install_dir() {
    mkdir -p "$root$3"
    chmod "$1" "$root$3"
    [ "$staging" -eq 1 ] || chown "$2" "$root$3"
}

# --- directories and files ------------------------------------------------------------
install_dir 0750 root:de1d "$conf_dir"
install_dir 0750 de1d:de1d "$state_dir"
install_dir 0750 de1d:de1d "$log_dir"

install_file 0755 root:root "$binary" "$bin_path"

if [ -e "$root$conf_path" ]; then
    if cmp -s "$script_dir/de1d.toml" "$root$conf_path"; then
        say "$conf_path is the shipped example"
    else
        say "keeping your $conf_path; compare it with $conf_path.example for new keys"
    fi
else
    say "installing $conf_path"
    install_file 0640 root:de1d "$script_dir/de1d.toml" "$conf_path"
fi
install_file 0640 root:de1d "$script_dir/de1d.toml" "$conf_path.example"

unit_changed=1
if [ -f "$root$unit_path" ] && cmp -s "$script_dir/de1d.service" "$root$unit_path"; then
    unit_changed=0
fi
install_file 0644 root:root "$script_dir/de1d.service" "$unit_path"
install_file 0644 root:root "$script_dir/logrotate.d/de1d" "$logrotate_path"

mosquitto_changed=0
if [ "$with_mosquitto" -eq 1 ]; then
    if [ -e "$root$mosquitto_path" ]; then
        cmp -s "$script_dir/mosquitto/de1d.conf" "$root$mosquitto_path" ||
            say "keeping your $mosquitto_path (the shipped one is $script_dir/mosquitto/de1d.conf)"
    else
        say "installing $mosquitto_path"
        install_file 0644 root:root "$script_dir/mosquitto/de1d.conf" "$mosquitto_path"
        mosquitto_changed=1
    fi
fi

[ ! -f "$repo_dir/README.md" ] || install_file 0644 root:root "$repo_dir/README.md" "$doc_dir/README.md"
for doc in "$repo_dir"/docs/*.md; do
    [ -f "$doc" ] || continue
    install_file 0644 root:root "$doc" "$doc_dir/docs/$(basename "$doc")"
done

# --- check the configuration ----------------------------------------------------------
# Without the caller's environment, so that only the file is checked (the service sees
# no DE1D_ variables either, unless a drop-in sets them).
if ! check=$(env -i PATH=/usr/bin:/bin "$root$bin_path" --config "$root$conf_path" config show 2>&1 >/dev/null); then
    echo "$check" >&2
    die "$conf_path is not valid; fix it, then run this script again"
fi
say "$conf_path is valid"

if [ "$staging" -eq 1 ]; then
    say "files staged under ${root:-/}"
    exit 0
fi

# --- systemd --------------------------------------------------------------------------
if [ ! -d /run/systemd/system ]; then
    say "systemd is not running here; enable the service later with: systemctl enable --now de1d"
    exit 0
fi
systemctl daemon-reload
if [ "$with_mosquitto" -eq 1 ]; then
    systemctl enable --quiet mosquitto.service
    if [ "$mosquitto_changed" -eq 1 ]; then
        say "restarting mosquitto to load $mosquitto_path"
        systemctl restart mosquitto.service
    fi
fi
if [ "$enable" -eq 1 ]; then
    systemctl enable --quiet de1d.service
    say "de1d.service is enabled (starts at boot)"
fi
if [ "$start" -eq 1 ]; then
    systemctl restart de1d.service
    say "de1d.service (re)started; follow it with: journalctl -u de1d -f"
elif systemctl is-active --quiet de1d.service; then
    say "de1d is running the previous binary$([ "$unit_changed" -eq 1 ] && echo " and unit"); restart it when convenient: sudo systemctl restart de1d"
else
    say "start it with: sudo systemctl start de1d"
fi
