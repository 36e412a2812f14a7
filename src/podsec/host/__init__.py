"""The machine, seen through a root prefix: paths, atomic files, the command runner,
accounts, /etc/hosts, sysctl.d and systemd units."""

from podsec.host.paths import Host

__all__ = ["Host"]
