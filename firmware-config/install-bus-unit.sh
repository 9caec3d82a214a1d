#!/usr/bin/env bash
# Turn a freshly flashed Raspberry Pi OS (Bookworm) into a bus unit.
#
#   sudo ./install-bus-unit.sh --gps uart|usb --server URL [--code CODE] [--root DIR] [--dry-run]
#
#   --gps uart     a GPS HAT on the UART (GPIO 14/15) with PPS on GPIO 4
#   --gps usb      a USB receiver (u-blox, SiRF/Prolific, CH340, MTK, CP210x): /dev/gps0
#   --server URL   the bustracker server, e.g. https://api.bustracker.com
#   --code CODE    a one-time enrollment code from the operators: exchanged for the
#                  device token by `bustracker-agent enroll`. The token itself never
#                  appears on a command line.
#   --root DIR     write every file under DIR instead of /; run no package manager,
#                  no systemctl, no useradd (print them instead). For tests.
#   --dry-run      print every change (with a diff) and the commands; change nothing.
#
# Idempotent: a second run changes nothing and duplicates no line; after an upgrade
# it puts back what changed and restarts only then. The agent's buffer
# (/var/lib/bustracker) is never touched. Every file written is listed, with why,
# in firmware-config/README.md.
set -euo pipefail

PROG=install-bus-unit.sh
AGENT_USER=bustracker
VENV=/opt/bustracker/.venv
CONFIG=/etc/bustracker/agent.toml
PACKAGES=(gpsd gpsd-clients pps-tools chrony python3-venv)
BEGIN_MARK="# >>> bustracker (install-bus-unit.sh; edits between these lines are replaced) >>>"
END_MARK="# <<< bustracker <<<"

usage() {
    echo "usage: $PROG --gps uart|usb --server URL [--code CODE] [--root DIR] [--dry-run]" >&2
    exit 2
}
die() {
    echo "$PROG: $*" >&2
    exit 2
}

GPS="" SERVER="" CODE="" ROOT="" DRY=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --gps) [[ $# -ge 2 ]] || usage; GPS=$2; shift 2 ;;
        --server) [[ $# -ge 2 ]] || usage; SERVER=$2; shift 2 ;;
        --code) [[ $# -ge 2 ]] || usage; CODE=$2; shift 2 ;;
        --root) [[ $# -ge 2 ]] || usage; ROOT=$2; shift 2 ;;
        --dry-run) DRY=1; shift ;;
        --token*) die "--token: a device token never goes on a command line; use --code (an enrollment code)" ;;
        -h | --help) usage ;;
        *) die "unknown option $1" ;;
    esac
done
[[ "$GPS" == uart || "$GPS" == usb ]] || { echo "$PROG: --gps must be uart or usb" >&2; usage; }
[[ "$SERVER" =~ ^https?://[^[:space:]\"]+$ ]] || die "--server must be an http:// or https:// URL, got '$SERVER'"
if [[ -n "$CODE" && ! "$CODE" =~ ^[A-Za-z0-9_-]+$ ]]; then
    die "--code: letters, digits, - and _ only"
fi
if [[ -n "$ROOT" ]]; then
    [[ -d "$ROOT" ]] || die "--root $ROOT: no such directory"
    ROOT=$(cd "$ROOT" && pwd)
    [[ "$ROOT" != / ]] || ROOT=""
fi
REAL=1
[[ -z "$ROOT" && $DRY -eq 0 ]] || REAL=0
if [[ $REAL -eq 1 && $EUID -ne 0 ]]; then
    die "run as root (sudo), or with --root DIR / --dry-run"
fi

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CHANGED=0 REBOOT=0

say() { printf '%s\n' "$*"; }
target() { printf '%s%s' "$ROOT" "$1"; }

# run CMD...: on a real install run it; otherwise print what would run.
run() {
    if [[ $REAL -eq 1 ]]; then
        say "+ $*"
        "$@"
    else
        say "would run: $*"
    fi
}

# put SRC DEST MODE OWNER: make DEST (under --root) hold SRC's bytes with MODE.
# MODE "keep": a file on the FAT boot partition, which has no modes or owners to set.
put() {
    local src=$1 dest=$2 mode=$3 owner=$4 t
    t=$(target "$dest")
    if [[ "$mode" == keep ]]; then
        if [[ -f "$t" ]] && cmp -s "$src" "$t"; then return 0; fi
        CHANGED=1
        if [[ $DRY -eq 1 ]]; then
            say "would write $dest:"
            diff -u --label "$dest (now)" --label "$dest (new)" \
                "$([[ -f "$t" ]] && echo "$t" || echo /dev/null)" "$src" | sed 's/^/    /' || true
            return 0
        fi
        say "write $dest"
        mkdir -p "$(dirname "$t")"
        cat "$src" >"$t"
        return 0
    fi
    if [[ -f "$t" ]] && cmp -s "$src" "$t" && [[ "$(stat -c %a "$t")" == "${mode#0}" ]]; then
        [[ $REAL -eq 0 ]] || chown "$owner" "$t"
        return 0
    fi
    CHANGED=1
    if [[ $DRY -eq 1 ]]; then
        say "would write $dest (mode $mode, owner $owner):"
        diff -u --label "$dest (now)" --label "$dest (new)" \
            "$([[ -f "$t" ]] && echo "$t" || echo /dev/null)" "$src" | sed 's/^/    /' || true
        return 0
    fi
    say "write $dest"
    install -D -m "$mode" "$src" "$t"
    if [[ $REAL -eq 1 ]]; then chown "$owner" "$t"; else say "would run: chown $owner $dest"; fi
}

# directory PATH MODE OWNER
directory() {
    local dir=$1 mode=$2 owner=$3 t
    t=$(target "$dir")
    if [[ -d "$t" && "$(stat -c %a "$t")" == "${mode#0}" ]]; then
        [[ $REAL -eq 0 ]] || chown "$owner" "$t"
        return 0
    fi
    CHANGED=1
    if [[ $DRY -eq 1 ]]; then
        say "would create directory $dir (mode $mode, owner $owner)"
        return 0
    fi
    say "directory $dir"
    install -d -m "$mode" "$t"
    if [[ $REAL -eq 1 ]]; then chown "$owner" "$t"; else say "would run: chown $owner $dir"; fi
}

# The current content of DEST (under --root), or nothing.
current() {
    local t
    t=$(target "$1")
    if [[ -f "$t" ]]; then cat "$t"; fi
}

# -- 1. packages ------------------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    if [[ $REAL -eq 0 ]] || ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$pkg")
    fi
done
if [[ ${#missing[@]} -gt 0 ]]; then
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# -- 2. firmware: config.txt (UART, PPS, LEDs, ignition shutdown) and the serial console -------------------
# One marked block, replaced as a whole: a re-run or an upgrade never duplicates a line.
{
    say "$BEGIN_MARK"
    say "[all]"
    if [[ "$GPS" == uart ]]; then grep -v '^#' "$HERE/config.txt.append"; fi
    grep -v '^#' "$HERE/config-leds.txt.append"
    grep -v '^#' "$HERE/config-power.txt.append"
    say "$END_MARK"
} >"$WORK/block"
current /boot/firmware/config.txt |
    awk -v b="$BEGIN_MARK" -v e="$END_MARK" '$0 == b {skip = 1} !skip {print} $0 == e {skip = 0}' \
        >"$WORK/config.txt"
cat "$WORK/block" >>"$WORK/config.txt"
before=$CHANGED CHANGED=0
put "$WORK/config.txt" /boot/firmware/config.txt keep -
[[ $CHANGED -eq 0 ]] || REBOOT=1
CHANGED=$((before | CHANGED))

if [[ "$GPS" == uart ]]; then
    # The serial console would talk over the GPS on the same UART.
    if [[ -f "$(target /boot/firmware/cmdline.txt)" ]]; then
        current /boot/firmware/cmdline.txt |
            sed -E 's/(^| )console=(serial0|ttyAMA0|ttyS0),[0-9]+//g; s/^ +//' >"$WORK/cmdline.txt"
        before=$CHANGED CHANGED=0
        put "$WORK/cmdline.txt" /boot/firmware/cmdline.txt keep -
        [[ $CHANGED -eq 0 ]] || REBOOT=1
        CHANGED=$((before | CHANGED))
    fi
    run systemctl mask serial-getty@ttyAMA0.service serial-getty@ttyS0.service
    run systemctl disable hciuart.service # Bluetooth's UART is the GPS's now (disable-bt)
fi

# -- 3. gpsd, udev, chrony --------------------------------------------------------------
if [[ "$GPS" == usb ]]; then
    sed 's|^DEVICES=.*|DEVICES="/dev/gps0"|' "$HERE/gpsd.default" >"$WORK/gpsd"
    chrony="$HERE/chrony-gps-usb.conf"
else
    cp "$HERE/gpsd.default" "$WORK/gpsd"
    chrony="$HERE/chrony-gps.conf"
fi
put "$WORK/gpsd" /etc/default/gpsd 0644 root:root
put "$HERE/99-bustracker-gps.rules" /etc/udev/rules.d/99-bustracker-gps.rules 0644 root:root
put "$HERE/99-bustracker-leds.rules" /etc/udev/rules.d/99-bustracker-leds.rules 0644 root:root
put "$chrony" /etc/chrony/conf.d/bustracker-gps.conf 0644 root:root

# -- 4. the agent's user, directories, venv ----------------------------------------------
if [[ $REAL -eq 0 ]] || ! id "$AGENT_USER" >/dev/null 2>&1; then
    run useradd --system --user-group --home-dir /var/lib/bustracker --no-create-home \
        --shell /usr/sbin/nologin "$AGENT_USER"
fi
for group in dialout gpio; do
    if [[ $REAL -eq 0 ]] || { getent group "$group" >/dev/null && ! id -nG "$AGENT_USER" | grep -qw "$group"; }; then
        run usermod -aG "$group" "$AGENT_USER"
    fi
done
directory /var/lib/bustracker 0750 "$AGENT_USER:$AGENT_USER"
# The agent's user owns its config directory so `enroll` (run as that user) can
# write the token file and the config; the service itself sees /etc read-only.
directory /etc/bustracker 0750 "$AGENT_USER:$AGENT_USER"
directory /opt/bustracker 0755 root:root
if [[ $REAL -eq 0 ]] || [[ ! -x "$VENV/bin/python" ]]; then
    run python3 -m venv "$VENV"
fi
# Only the agent extra: a bus unit carries nothing of the server.
run "$VENV/bin/pip" install -q --upgrade "${REPO}[agent]"
for doc in agent.md bus-unit.md; do
    put "$REPO/docs/$doc" "/opt/bustracker/docs/$doc" 0644 root:root
done

# -- 5. the agent's config ---------------------------------------------------------------
if [[ -f "$(target "$CONFIG")" ]]; then
    # Kept as the installer left it; only the server URL follows --server.
    current "$CONFIG" | awk -v url="$SERVER" '
        /^\[/ {section = $0}
        section == "[server]" && /^url *=/ && !done {print "url = \"" url "\""; done = 1; next}
        {print}' >"$WORK/agent.toml"
else
    sed "s|^url = .*|url = \"$SERVER\"|" "$HERE/agent.toml.example" >"$WORK/agent.toml"
fi
put "$WORK/agent.toml" "$CONFIG" 0640 "$AGENT_USER:$AGENT_USER"

# -- 6. systemd ----------------------------------------------------------------------------
before=$CHANGED
put "$REPO/systemd/bustracker-agent.service" /etc/systemd/system/bustracker-agent.service \
    0644 root:root
run udevadm control --reload-rules
run udevadm trigger --subsystem-match=tty --subsystem-match=leds
run systemctl daemon-reload
run systemctl enable --now gpsd.service chrony.service bustracker-agent.service

# -- 7. enrollment: the code becomes a token file only the agent's user can read ------------
ENROLLED=0
if [[ -n "$CODE" ]]; then
    if [[ $REAL -eq 1 ]] && runuser -u "$AGENT_USER" -- "$VENV/bin/bustracker-agent" \
        check-config --config "$CONFIG" >/dev/null 2>&1; then
        # A code is single use: a re-run must not burn it against a unit that has a token.
        say "already enrolled (the config's token is readable); --code not used"
    else
        run runuser -u "$AGENT_USER" -- "$VENV/bin/bustracker-agent" enroll \
            --server "$SERVER" --code "$CODE" --config "$CONFIG"
        ENROLLED=1
    fi
fi
if [[ $CHANGED -ne 0 || $before -ne 0 || $ENROLLED -ne 0 ]]; then
    run systemctl restart gpsd.service chrony.service bustracker-agent.service
fi

if [[ $DRY -eq 1 ]]; then
    say "dry run: nothing was changed"
elif [[ $CHANGED -eq 0 ]]; then
    say "nothing to change: this unit is installed"
fi
if [[ $REBOOT -eq 1 ]]; then
    say "config.txt/cmdline.txt changed: reboot to apply (sudo reboot)"
fi
say "check it on the bus: sudo -u $AGENT_USER $VENV/bin/bustracker-agent doctor --config $CONFIG"
