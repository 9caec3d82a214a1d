#!/usr/bin/env bash
# Turn a fresh Raspberry Pi OS (Bookworm) into a bus unit.
#   sudo ./install-bus-unit.sh --server https://api.bustracker.com --token bt_xxx
# Idempotent: safe to run again after an upgrade. The agent's buffer
# (/var/lib/bustracker) is never touched.
set -euo pipefail
SERVER=""; TOKEN=""; GPS="uart"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --server) SERVER=$2; shift 2 ;;
        --token) TOKEN=$2; shift 2 ;;
        --gps) GPS=$2; shift 2 ;;   # uart (HAT on GPIO) or usb (u-blox)
        *) echo "install-bus-unit.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
[[ -n "$SERVER" && -n "$TOKEN" ]] || { echo "usage: $0 --server URL --token TOKEN [--gps uart|usb]" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "install-bus-unit.sh: run as root (sudo)" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")

apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y gpsd gpsd-clients pps-tools chrony python3-venv

if [[ "$GPS" == "uart" ]]; then
    CONFIG=/boot/firmware/config.txt
    grep -q '^dtoverlay=pps-gpio' "$CONFIG" || cat "$HERE/config.txt.append" >> "$CONFIG"
    raspi-config nonint do_serial_cons 1 || true
fi
install -m 0644 "$HERE/gpsd.default" /etc/default/gpsd
install -m 0644 "$HERE/99-bustracker-gps.rules" /etc/udev/rules.d/
install -m 0644 "$HERE/chrony-gps.conf" /etc/chrony/conf.d/bustracker-gps.conf
[[ "$GPS" == "usb" ]] && sed -i 's|^DEVICES=.*|DEVICES="/dev/gps0"|' /etc/default/gpsd

id bustracker >/dev/null 2>&1 || useradd --system --home /var/lib/bustracker --shell /usr/sbin/nologin bustracker
getent group gpio >/dev/null && usermod -aG gpio bustracker
usermod -aG dialout bustracker
install -d -o bustracker -g bustracker -m 0750 /var/lib/bustracker
install -d -m 0755 /etc/bustracker /opt/bustracker

# Only the agent extra: a bus unit carries nothing of the server.
[[ -d /opt/bustracker/.venv ]] || python3 -m venv /opt/bustracker/.venv
/opt/bustracker/.venv/bin/pip install --upgrade "$REPO[agent]"

umask 077
printf '%s\n' "$TOKEN" > /etc/bustracker/device-token
chown root:bustracker /etc/bustracker/device-token && chmod 0640 /etc/bustracker/device-token
if [[ ! -f /etc/bustracker/agent.toml ]]; then
    sed "s|https://api.bustracker.com|$SERVER|" "$HERE/agent.toml.example" > /etc/bustracker/agent.toml
fi
chmod 0644 /etc/bustracker/agent.toml
/opt/bustracker/.venv/bin/bustracker-agent check-config --config /etc/bustracker/agent.toml

install -m 0644 "$REPO/systemd/bustracker-agent.service" /etc/systemd/system/
udevadm control --reload-rules
systemctl daemon-reload
systemctl enable --now gpsd chrony bustracker-agent
echo "bus unit ready: bustracker-agent status --config /etc/bustracker/agent.toml"
