"""`podsec monitor install`: units and cron files name programs that exist (issue 16)."""

from __future__ import annotations

import re
from pathlib import Path

from podsec.host.paths import Host
from podsec.monitor import install


def _programs(text: str) -> list[str]:
    out = [
        line.split("=", 1)[1].split()[0]
        for line in text.splitlines()
        if line.startswith("ExecStart=")
    ]
    out += [line.split()[5] for line in text.splitlines() if line and line[0] in "*0123456789"]
    return out


def test_units_and_cron_files_name_the_installed_programs(tmp_path: Path) -> None:
    install.install(Host(tmp_path))
    units = sorted((tmp_path / "etc/systemd/system").iterdir())
    crons = sorted((tmp_path / "etc/podsec/crontabs").iterdir())
    assert [p.name for p in crons] == [
        "podsec-inotify-check-kubeapi",
        "podsec-inotify-check-vuln",
    ]
    named = [prog for p in units + crons for prog in _programs(p.read_text())]
    assert len(named) >= len(units) // 2 + 2
    for prog in named:
        if Path(prog).name.startswith("podsec"):  # trivy (the server unit) is its own package
            assert Path(prog).is_file(), prog  # /usr/bin/podsec-inotify-* does not exist here


def test_cron_lines_keep_the_seeds_schedule(tmp_path: Path) -> None:
    install.install(Host(tmp_path))
    for name in ("podsec-inotify-check-kubeapi", "podsec-inotify-check-vuln"):
        lines = [
            line
            for line in (tmp_path / "etc/podsec/crontabs" / name).read_text().splitlines()
            if line and not line.startswith("#")
        ]
        assert len(lines) == 1
        fields = lines[0].split()
        assert fields[:5] == ["*/10", "*", "*", "*", "*"]
        assert Path(fields[5]).name == name and len(fields) in (6, 8)  # no option: the seed's
    timer = (tmp_path / "etc/systemd/system/podsec-inotify-check-kubeapi-mail.timer").read_text()
    assert re.search(r"^OnCalendar=\*:0/10$", timer, re.M)


def test_packaging_names_usr_bin(tmp_path: Path) -> None:
    install.install(Host(tmp_path), bindir="/usr/bin")
    text = (tmp_path / "etc/systemd/system/podsec-inotify-check-policy.service").read_text()
    assert "ExecStart=/usr/bin/podsec-inotify-check-policy" in text
