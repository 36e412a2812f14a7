"""Install the monitoring units, timers, NRPE/Nagios/Icinga2 configs and the nagwad sed file
(shipped in ``podsec/data/monitor``) under the host root."""

from __future__ import annotations

from importlib import resources

from podsec.host import files, systemd
from podsec.host.paths import Host

# data file (relative to podsec/data/monitor) → installed path
DESTINATIONS = {
    "nrpe/podsec-commands.cfg": "/etc/nagios/nrpe-commands/podsec-commands.cfg",
    "nagios/podsec-services.cfg": "/etc/nagios/templates/podsec-services.cfg",
    "icinga2/podsec.conf": "/etc/icinga2/conf.d/podsec.conf",
    "nagwad/podsec.sed": "/etc/nagwad/podsec.sed",
    "sysctl/90-podsec-inotify.conf": "/etc/sysctl.d/90-podsec-inotify.conf",
}
ENABLED = (
    "podsec-inotify-check-containers.service",
    "podsec-inotify-check-kubeapi.service",
    "podsec-inotify-check-policy.timer",
    "podsec-inotify-check-images.timer",
    "podsec-inotify-check-vuln.timer",
    "podsec-inotify-check-kubeapi-mail.timer",
)


def data_dir() -> resources.abc.Traversable:
    return resources.files("podsec").joinpath("data/monitor")


def unit_names() -> list[str]:
    return sorted(p.name for p in data_dir().joinpath("systemd").iterdir() if p.is_file())


def install(host: Host, *, enable: bool = False) -> list[str]:
    """Write every file (atomically, idempotent); return the paths that changed."""
    changed = []
    base = data_dir()
    for name in unit_names():
        path = host.path(f"{systemd.SYSTEM_DIR}/{name}")
        if files.atomic_write(path, base.joinpath("systemd", name).read_text(), mode=0o644):
            changed.append(str(path))
    for source, dest in DESTINATIONS.items():
        path = host.path(dest)
        if files.atomic_write(path, base.joinpath(source).read_text(), mode=0o644):
            changed.append(str(path))
    if enable:
        systemd.enable(host, *ENABLED)
    return changed
