"""The real installer, run with --root into a temp dir (twice: idempotent) and --dry-run.

A card image is stood in for by the two boot files a fresh Bookworm flash has
(``config.txt`` with a ``[pi4]`` section last, ``cmdline.txt`` with the serial
console); everything else the script writes into an empty tree. No command runs
under --root (it prints them), so there is no network and no apt.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from agent.settings import load_settings
from tests.service_procs import in_ci

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "firmware-config" / "install-bus-unit.sh"
CONFIG_TXT = "# fresh Bookworm\ndtparam=audio=on\n[pi4]\narm_boost=1\n"
CMDLINE = "console=serial0,115200 console=tty1 root=PARTUUID=1234-02 rootfstype=ext4 rootwait\n"


def card(root: Path) -> Path:
    boot = root / "boot" / "firmware"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE)
    return root


def install(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], "LC_ALL": "C"},
    )
    return r


def tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under root with its mode and (for files) its bytes."""
    out: dict[str, tuple[int, bytes | None]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        out["/" + str(p.relative_to(root))] = (
            stat.S_IMODE(st.st_mode),
            p.read_bytes() if p.is_file() else None,
        )
    return out


def files(root: Path) -> set[str]:
    return {k for k, (_, data) in tree(root).items() if data is not None}


@pytest.fixture(scope="module")
def uart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    root = card(tmp_path_factory.mktemp("uart"))
    args = ("--gps", "uart", "--server", "https://bt.example", "--code", "K7-2Q", "--root")
    first = install(*args, str(root))
    assert first.returncode == 0, first.stderr
    after_first = tree(root)
    second = install(*args, str(root))
    assert second.returncode == 0, second.stderr
    assert tree(root) == after_first  # idempotent: not one byte or mode changed
    return root, first.stdout, second.stdout


def test_second_run_changes_nothing(uart: tuple[Path, str, str]) -> None:
    _, first, second = uart
    assert "write /etc/default/gpsd" in first
    assert not re.search(r"^(write|directory) ", second, re.M), second
    assert "nothing to change" in second and "reboot" not in second


def test_config_txt_block_once_under_all(uart: tuple[Path, str, str]) -> None:
    root, _, _ = uart
    text = (root / "boot/firmware/config.txt").read_text()
    assert text.startswith(CONFIG_TXT)  # the card's own lines untouched
    block = text[len(CONFIG_TXT) :].splitlines()
    # [all] first: appended after "[pi4]" the lines would otherwise apply to a Pi 4 only.
    assert block[1:-1] == [
        "[all]",
        "enable_uart=1",
        "dtoverlay=disable-bt",
        "dtoverlay=pps-gpio,gpiopin=4",
        "dtoverlay=gpio-led,gpio=17,label=bt-gps,trigger=none",
        "dtoverlay=gpio-led,gpio=27,label=bt-link,trigger=none",
        "dtoverlay=gpio-shutdown,gpio_pin=3,active_low=1,gpio_pull=up",
        "dtoverlay=gpio-poweroff,gpiopin=26",
    ]
    assert text.count("enable_uart=1") == 1


def test_serial_console_off(uart: tuple[Path, str, str]) -> None:
    root, out, _ = uart
    assert (root / "boot/firmware/cmdline.txt").read_text() == CMDLINE.replace(
        "console=serial0,115200 ", ""
    )
    assert "would run: systemctl mask serial-getty@ttyAMA0.service" in out
    assert "reboot to apply" in out


def test_commands_printed_not_run(uart: tuple[Path, str, str]) -> None:
    _, out, _ = uart
    ran = [line for line in out.splitlines() if line.startswith("+ ")]
    assert ran == []  # --root runs nothing
    for cmd in (
        "would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y -q gpsd",
        "would run: useradd --system --user-group",
        f"would run: /opt/bustracker/.venv/bin/pip install -q --upgrade {ROOT}[agent]",
        "would run: systemctl enable --now gpsd.service chrony.service bustracker-agent.service",
        "would run: runuser -u bustracker -- /opt/bustracker/.venv/bin/bustracker-agent enroll"
        " --server https://bt.example --code K7-2Q --config /etc/bustracker/agent.toml",
    ):
        assert cmd in out, cmd


def test_the_written_config_is_valid_agent_config(uart: tuple[Path, str, str]) -> None:
    root, _, _ = uart
    cfg = root / "etc/bustracker/agent.toml"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o640
    settings = load_settings(cfg, env={})
    assert settings.server.url == "https://bt.example"
    assert settings.gps.source == "gpsd" and settings.leds.backend == "sysfs"
    assert (settings.leds.gps, settings.leds.link) == ("bt-gps", "bt-link")  # = config.txt labels
    gpsd = (root / "etc/default/gpsd").read_text()
    assert 'DEVICES="/dev/serial0 /dev/pps0"' in gpsd
    chrony = (root / "etc/chrony/conf.d/bustracker-gps.conf").read_text()
    assert "refclock PPS /dev/pps0" in chrony


def test_readme_lists_every_file_written(uart: tuple[Path, str, str]) -> None:
    root, _, _ = uart
    readme = (ROOT / "firmware-config/README.md").read_text()
    listed = set(re.findall(r"^\| `(/[^`]+)`", readme, re.M))
    listed.add(
        "/opt/bustracker/docs/bus-unit.md"
    )  # on agent.md's row: "`…/agent.md`, `bus-unit.md`"
    assert files(root) == listed


def test_usb_receiver(tmp_path: Path) -> None:
    root = card(tmp_path)
    r = install("--gps", "usb", "--server", "http://10.0.0.5:3000", "--root", str(root))
    assert r.returncode == 0, r.stderr
    assert (root / "boot/firmware/cmdline.txt").read_text() == CMDLINE  # console stays
    assert "enable_uart" not in (root / "boot/firmware/config.txt").read_text()
    assert 'DEVICES="/dev/gps0"' in (root / "etc/default/gpsd").read_text()
    chrony = (root / "etc/chrony/conf.d/bustracker-gps.conf").read_text()
    assert "PPS" not in chrony.replace("no PPS", "") and "noselect" not in chrony
    rules = (root / "etc/udev/rules.d/99-bustracker-gps.rules").read_text()
    for vendor in ("1546", "067b", "1a86", "0e8d"):  # u-blox, Prolific/SiRF, CH340, MTK
        assert f'ATTRS{{idVendor}}=="{vendor}"' in rules
    assert "enroll" not in r.stdout  # no --code: not enrolled (link LED: config fault)
    # Switching a unit from uart to usb later replaces the block instead of adding one.
    r = install("--gps", "uart", "--server", "http://10.0.0.5:3000", "--root", str(root))
    text = (root / "boot/firmware/config.txt").read_text()
    assert text.count("# >>> bustracker") == 1 and "enable_uart=1" in text


def test_dry_run_prints_every_change_and_writes_nothing(tmp_path: Path) -> None:
    root = card(tmp_path)
    before = tree(root)
    r = install("--gps", "uart", "--server", "https://bt.example", "--root", str(root), "--dry-run")
    assert r.returncode == 0, r.stderr
    assert tree(root) == before
    would = set(re.findall(r"^would write ([^ :]+)", r.stdout, re.M))
    real = card(tmp_path / "real")
    install("--gps", "uart", "--server", "https://bt.example", "--root", str(real))
    # Every file the real run writes or changes, announced.
    assert would == {k for k, v in tree(real).items() if v[1] is not None and before.get(k) != v}
    assert "+enable_uart=1" in r.stdout  # as a diff
    assert "dry run: nothing was changed" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--gps", "usb", "--server", "https://x", "--token", "bt_secret"],
            "never goes on a command line",
        ),
        (["--gps", "hat", "--server", "https://x"], "--gps must be uart or usb"),
        (["--gps", "usb", "--server", "ftp://x"], "--server must be an http"),
        (
            ["--gps", "usb", "--server", "https://x", "--root", "/nonexistent/dir"],
            "no such directory",
        ),
    ],
)
def test_bad_arguments_are_named(args: list[str], message: str) -> None:
    r = install(*args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_shellcheck_finds_nothing() -> None:
    exe = shutil.which("shellcheck")
    if exe is None:
        message = "shellcheck not found: install the Debian package shellcheck"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    r = subprocess.run([exe, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
