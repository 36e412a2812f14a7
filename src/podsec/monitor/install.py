"""Install the monitoring units, timers, cron files, NRPE/Nagios/Icinga2 configs and the
nagwad sed file (shipped in ``podsec/data/monitor``) under the host root.

The shipped units and cron files name the programs as the packages install them
(``/usr/bin/podsec-inotify-*``); ``install`` rewrites them to where the programs are in this
install (a venv, ``pip --prefix``), so an enabled unit never names a program that is absent.
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from pathlib import Path

from podsec.errors import NotFoundError
from podsec.host import files, run, systemd
from podsec.host.paths import Host
from podsec.i18n import _

# data file (relative to podsec/data/monitor) → installed path
DESTINATIONS = {
    "nrpe/podsec-commands.cfg": "/etc/nagios/nrpe-commands/podsec-commands.cfg",
    "nagios/podsec-services.cfg": "/etc/nagios/templates/podsec-services.cfg",
    "icinga2/podsec.conf": "/etc/icinga2/conf.d/podsec.conf",
    "nagwad/podsec.sed": "/etc/nagwad/podsec.sed",
    "sysctl/90-podsec-inotify.conf": "/etc/sysctl.d/90-podsec-inotify.conf",
    "crontabs/podsec-inotify-check-kubeapi": "/etc/podsec/crontabs/podsec-inotify-check-kubeapi",
    "crontabs/podsec-inotify-check-vuln": "/etc/podsec/crontabs/podsec-inotify-check-vuln",
}
PACKAGED_BIN = "/usr/bin"
_PROGRAM_RE = re.compile(r"/usr/bin/(podsec[A-Za-z0-9_-]*)")
ENABLED = (
    "podsec-inotify-check-containers.service",
    "podsec-inotify-check-kubeapi.service",
    "podsec-inotify-check-policy.timer",
    "podsec-inotify-check-images.timer",
    "podsec-inotify-check-keys.timer",
    "podsec-inotify-check-vuln.timer",
    "podsec-inotify-check-kubeapi-mail.timer",
)


def data_dir() -> resources.abc.Traversable:
    return resources.files("podsec").joinpath("data/monitor")


def unit_names() -> list[str]:
    return sorted(p.name for p in data_dir().joinpath("systemd").iterdir() if p.is_file())


def program_path(host: Host, name: str) -> str:
    """Where ``name`` is: /usr/bin on a host that has it there (packages), else beside this
    interpreter (the venv or prefix podsec runs from), else on PATH."""
    if host.path(f"{PACKAGED_BIN}/{name}").exists():
        return f"{PACKAGED_BIN}/{name}"
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = run.which(name)
    if found is None:
        raise NotFoundError(
            _(
                "program {prog} not found: the units would name a program that does not exist"
            ).format(prog=name),
            hint=_("install podsec with its programs (pip install, or the podsec-inotify package)"),
        )
    return found


def with_programs(text: str, host: Host, bindir: str | None) -> str:
    """``text`` with each ``/usr/bin/podsec-*`` pointing at the installed program."""

    def where(m: re.Match[str]) -> str:
        return f"{bindir}/{m[1]}" if bindir else program_path(host, m[1])

    return _PROGRAM_RE.sub(where, text)


def install(host: Host, *, enable: bool = False, bindir: str | None = None) -> list[str]:
    """Write every file (atomically, idempotent); return the paths that changed.
    ``bindir`` names the programs' directory outright (packaging: /usr/bin)."""
    changed = []
    base = data_dir()
    for name in unit_names():
        path = host.path(f"{systemd.SYSTEM_DIR}/{name}")
        text = with_programs(base.joinpath("systemd", name).read_text(), host, bindir)
        if files.atomic_write(path, text, mode=0o644):
            changed.append(str(path))
    for source, dest in DESTINATIONS.items():
        path = host.path(dest)
        text = with_programs(base.joinpath(source).read_text(), host, bindir)
        if files.atomic_write(path, text, mode=0o644):
            changed.append(str(path))
    if enable:
        systemd.enable(host, *ENABLED)
    return changed
