"""Accepted bad input, now refused (issue 15): values that look like arguments but cannot be
meant — unreachable registry addresses, unusable VIPs, duplicate servers, a mail domain that
forges a GPG uid, over-long repository names, an empty ``--root``, a negative timeout, a
trivy that is absent or a server that is not one, a mail recipient list — each refused by
every command that takes it, with its exit code, one line naming it, and nothing changed.
Nagios plugins answer UNKNOWN (3) with the problem on their status line.
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import CLUSTER_READERS, Sandbox

REGISTRY_ADDRESSES = {
    "ipv6-loopback": "::1",
    "ipv4-mapped-loopback": "::ffff:127.0.0.1",
    "broadcast": "255.255.255.255",
    "link-local-scoped": "fe80::1%eth0",
    "link-local-ipv4": "169.254.1.1",
    "unspecified": "0.0.0.0",
    "unspecified-ipv6": "::",
    "multicast": "224.0.0.1",
    "reserved": "240.0.0.1",
    "not-an-address": "registry.local",
    "127.0.0.1": "127.0.0.1",
}
POLICY_CREATE = {
    "policy create": (("policy", "create"), "podsec"),
    "podsec-create-policy": ((), "podsec-create-policy"),
}


@pytest.mark.parametrize("address", sorted(REGISTRY_ADDRESSES))
@pytest.mark.parametrize("command", sorted(POLICY_CREATE))
def test_registry_address(sandbox: Sandbox, command: str, address: str) -> None:
    args, prog = POLICY_CREATE[command]
    value = REGISTRY_ADDRESSES[address]
    result = sandbox.refused([*args, "--", value], 2, prog=prog)
    assert value in result.message or "not an IP address" in result.message


CLUSTER = """\
vip: {vip}
control_plane:
  - {{name: master01, address: 192.168.122.80}}
{extra}vrrp: {{auth_pass: s3cret}}
haproxy: {{log: null, chroot: null, user: null, group: null, stats_socket: null}}
"""
VIPS = {
    "unspecified": ("0.0.0.0", "unspecified"),
    "multicast": ("224.0.0.18", "multicast"),
    "loopback": ("127.0.0.1", "loopback"),
    "broadcast": ("255.255.255.255", "broadcast"),
    "link-local": ("169.254.0.5", "link-local"),
    "reserved": ("240.1.2.3", "reserved"),
    "ipv6": ("fe80::1", "invalid IPv4 address"),
    "not-an-address": ("vip.example.org", "invalid IPv4 address"),
}


def _cluster_args(sandbox: Sandbox, command: str, text: str) -> list[str]:
    path = sandbox.write("cluster.yaml", text)
    return [a.format(file=path, top=sandbox.top) for a in CLUSTER_READERS[command]]


@pytest.mark.parametrize("vip", sorted(VIPS))
@pytest.mark.parametrize("command", sorted(CLUSTER_READERS))
def test_vip_in_cluster_file(sandbox: Sandbox, command: str, vip: str) -> None:
    value, problem = VIPS[vip]
    args = _cluster_args(sandbox, command, CLUSTER.format(vip=value, extra=""))
    sandbox.refused(args, 1, "vip", problem)


@pytest.mark.parametrize("vip", sorted(VIPS))
def test_vip_argument_exits_2(sandbox: Sandbox, vip: str) -> None:
    value, problem = VIPS[vip]
    sandbox.refused(("lb", "check-apiserver", "--vip", value), 2, "--vip", problem)


DUPLICATES = {
    "same-control-plane-address": (
        "  - {name: master02, address: 192.168.122.80}\n",
        "same address",
    ),
    "same-ingress-address": (
        "ingress:\n  nodes:\n  - {name: n1, address: 10.0.0.5}\n  - {name: n2, address: 10.0.0.5}\n",
        "same address",
    ),
    "same-name": ("  - {name: master01, address: 192.168.122.81}\n", "duplicate server name"),
}


@pytest.mark.parametrize("dup", sorted(DUPLICATES))
@pytest.mark.parametrize("command", sorted(CLUSTER_READERS))
def test_duplicate_servers_in_cluster_file(sandbox: Sandbox, command: str, dup: str) -> None:
    extra, problem = DUPLICATES[dup]
    args = _cluster_args(sandbox, command, CLUSTER.format(vip="10.150.0.160", extra=extra))
    sandbox.refused(args, 1, problem)


EMAIL_DOMAINS = {
    "uid-injection": "a b <evil@x>",
    "empty": "",
    "angle": "x>",
    "at-sign": "evil@x",
    "space": "registry local",
    "newline": "registry.local\nx",
    "ip-address": "10.0.0.1",
    "trailing-dot": "registry.local.",
}
IMAGEMAKER = {
    "users create-imagemaker": (("users", "create-imagemaker", "alice"), "podsec"),
    "podsec-create-imagemakeruser": (("alice",), "podsec-create-imagemakeruser"),
}


@pytest.mark.parametrize("domain", sorted(EMAIL_DOMAINS))
@pytest.mark.parametrize("command", sorted(IMAGEMAKER))
def test_email_domain(sandbox: Sandbox, command: str, domain: str) -> None:
    args, prog = IMAGEMAKER[command]
    sandbox.refused(
        [*args, "--email-domain", EMAIL_DOMAINS[domain]], 2, "--email-domain", prog=prog
    )


LONG = "a" * 5000
REPO_NAMES = {
    "users create-imagemaker 5000 chars": (("users", "create-imagemaker", f"alice@{LONG}"),),
    "users create-imagemaker 250 chars": (("users", "create-imagemaker", "alice@" + "b" * 250),),
    "images load-sign target 5000 chars": (
        ("images", "load-sign", "{top}/a.tar", "amd64", "m@example.org", f"registry.local/{LONG}"),
    ),
    "images load target 5000 chars": (
        ("images", "load", "--verify", "{top}/a.tar", "amd64", f"registry.local/{LONG}"),
    ),
}


@pytest.mark.parametrize("case", sorted(REPO_NAMES))
def test_repository_name_length(sandbox: Sandbox, case: str) -> None:
    (args,) = REPO_NAMES[case]
    result = sandbox.refused(
        [a.format(top=sandbox.top) for a in args], 2, "invalid repository path"
    )
    assert len(result.message) < 300  # the 5,000 characters are not echoed back


EMPTY_ROOT = {
    "doctor": ("doctor", "--no-tools"),
    "policy show": ("policy", "show"),
    "policy create": ("policy", "create", "192.0.2.10"),
    "lb add-server": ("lb", "add-server", "m2", "192.0.2.11"),
}


@pytest.mark.parametrize("command", sorted(EMPTY_ROOT))
def test_empty_root(sandbox: Sandbox, command: str) -> None:
    sandbox.refused(("--root", "", *EMPTY_ROOT[command]), 2, "--root ''", root=False)


PLUGINS = {
    "podsec-inotify-check-policy": ((), "podsec-inotify-check-policy"),
    "podsec-inotify-check-images": ((), "podsec-inotify-check-images"),
    "monitor check-policy": (("monitor", "check-policy"), "podsec"),
    "monitor check-images": (("monitor", "check-images"), "podsec"),
}
PLUGIN_ARGS = {
    "negative-timeout": (("-t", "-5"), "-t -5"),
    "zero-timeout": (("-t", "0"), "-t 0"),
    "nan-timeout": (("-t", "nan"), "-t nan"),
    "mail-list": (("-M", "a;b"), "-M 'a;b'"),
    "mail-header": (("-M", "root\nBcc: evil@x"), "not a mail address"),
    "mail-spaces": (("-M", "a b@x"), "not a mail address"),
}


@pytest.mark.parametrize("arg", sorted(PLUGIN_ARGS))
@pytest.mark.parametrize("command", sorted(PLUGINS))
def test_plugin_arguments_are_unknown(sandbox: Sandbox, command: str, arg: str) -> None:
    args, prog = PLUGINS[command]
    extra, problem = PLUGIN_ARGS[arg]
    sandbox.refused([*args, *extra], 3, "UNKNOWN", problem, prog=prog, stream="stdout")


VULN = {
    "podsec-inotify-check-vuln": ((), "podsec-inotify-check-vuln"),
    "monitor check-vuln": (("monitor", "check-vuln"), "podsec"),
}
VULN_CASES = {
    "trivy-absent": ((), {"PODSEC_TRIVY": "/nonexistent/trivy"}, "trivy"),
    "bad-server": (("--server", "bad server!"), {"PODSEC_TRIVY": "/bin/true"}, "bad server!"),
    "server-bad-port": (("--server", "trivy.local:99999"), {"PODSEC_TRIVY": "/bin/true"}, "99999"),
    "server-option": (("--server=-oX",), {"PODSEC_TRIVY": "/bin/true"}, "-oX"),
    "mail-list": (("-m", "a;b"), {"PODSEC_TRIVY": "/bin/true"}, "a;b"),
}


@pytest.mark.parametrize("case", sorted(VULN_CASES))
@pytest.mark.parametrize("command", sorted(VULN))
def test_check_vuln_is_never_ok_without_a_scan(sandbox: Sandbox, command: str, case: str) -> None:
    args, prog = VULN[command]
    extra, env, problem = VULN_CASES[case]
    sandbox.refused([*args, *extra], 3, "UNKNOWN", problem, prog=prog, env=env, stream="stdout")


KUBEAPI = {
    "monitor watch-kubeapi": (("monitor", "watch-kubeapi"), "podsec"),
    "podsec-inotify-check-kubeapi": ((), "podsec-inotify-check-kubeapi"),
}
KUBEAPI_CASES = {
    "log-is-a-dir": (("-d", "--once", "--log", "/var/log/audit"), "is a directory"),
    "log-is-a-fifo": (("-d", "--once", "--log", "/var/log/fifo"), "is a FIFO"),
    "mailto-list": (("-m", "-M", "a;b"), "-M 'a;b'"),
    "two-modes": (("-d", "-m"), "only one of"),
    "three-modes": (("-d", "-m", "--install"), "only one of"),
}


@pytest.mark.parametrize("case", sorted(KUBEAPI_CASES))
@pytest.mark.parametrize("command", sorted(KUBEAPI))
def test_watch_kubeapi_arguments(sandbox: Sandbox, command: str, case: str) -> None:
    import os

    sandbox.path("/var/log/audit").mkdir(parents=True)
    os.mkfifo(sandbox.path("/var/log/fifo"))
    args, prog = KUBEAPI[command]
    extra, problem = KUBEAPI_CASES[case]
    extra = tuple(a.format(top=sandbox.top) for a in extra)
    sandbox.refused([*args, *extra], 2, problem, prog=prog)


def test_check_vuln_bad_server_setting_is_unknown(sandbox: Sandbox) -> None:
    env = {"PODSEC_TRIVY": "/bin/true", "U7S_TRIVY_SERVER": "a b"}
    sandbox.refused(
        [],
        3,
        "UNKNOWN",
        "U7S_TRIVY_SERVER",
        prog="podsec-inotify-check-vuln",
        env=env,
        stream="stdout",
    )
