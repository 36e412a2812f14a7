"""Option injection into scp: a remote login, host or path that scp could read as an option
(``-oProxyCommand=…``), an invalid address (``999.1.1.1``) or a name with shell or control
characters is refused with exit 2, naming it, before ~/.kube is touched or any program
runs — through every command that takes one (issue 15). A fake ``scp`` first on PATH
records any call: a row that reached it would change the compared tree.
"""

from __future__ import annotations

import pytest

from podsec.host import ssh
from tests.hostile.conftest import Sandbox

KUBECONFIG_PROGS = {
    "rbac create-kubeconfig": (("rbac", "create-kubeconfig"), "podsec"),
    "podsec-k8s-rbac-create-kubeconfig": ((), "podsec-k8s-rbac-create-kubeconfig"),
}
REMOTEPLACE_PROGS = {
    "rbac create-remoteplace": (("rbac", "create-remoteplace"), "podsec"),
    "podsec-k8s-rbac-create-remoteplace": ((), "podsec-k8s-rbac-create-remoteplace"),
}

# USER[@REMOTE_USER] of create-kubeconfig → what the message names
USER_SPECS = {
    "proxycommand": ("alice@-oProxyCommand=touch /tmp/pwned", "invalid remote user name"),
    "option-F": ("alice@-F/etc/passwd", "invalid remote user name"),
    "semicolon": ("alice@root;id", "invalid remote user name"),
    "space": ("alice@ro ot", "invalid remote user name"),
    "command-substitution": ("alice@$(id)", "invalid remote user name"),
    "second-at": ("alice@bob@host", "invalid remote user name"),
    "too-long": ("alice@" + "a" * 40, "invalid remote user name"),
    "newline": ("alice@root\nid", "invalid remote user name"),
    "empty-remote": ("alice@", "empty remote user"),
    "user-with-space": ("al ice", "invalid user or group name"),
    "user-with-slash": ("../alice", "invalid user or group name"),
}

# ADDRESS of create-remoteplace
ADDRESSES = {
    "invalid-ipv4": "999.1.1.1",
    "short-ipv4": "1.2.3",
    "proxycommand": "-oProxyCommand=touch /tmp/pwned",
    "space": "host name",
    "semicolon": "a;b",
    "empty": "",
    "bracketed": "[::1]",
    "with-port": "host:22",
    "underscore": "ex_ample.org",
    "too-long": "a" * 300,
    "bad-scope": "fe80::1%eth0;id",
    "label-hyphen": "-host.example.org",
}

# --user / --remote-path / --ssh-option of create-remoteplace
OPTIONS = {
    "user-proxycommand": (("--user", "-oProxyCommand=x"), "invalid remote user name"),
    "user-semicolon": (("--user", "root;id"), "invalid remote user name"),
    "user-empty": (("--user", ""), "invalid remote user name"),
    "path-option": (("--remote-path", "-oProxyCommand=x"), "invalid remote path"),
    "path-empty": (("--remote-path", ""), "invalid remote path"),
    "path-newline": (("--remote-path", ".kube/config\nx"), "invalid remote path"),
    "ssh-option-no-value": (("--ssh-option", "ProxyCommand"), "invalid ssh option"),
    "ssh-option-dash": (("--ssh-option", "-oProxyCommand=x"), "invalid ssh option"),
}


def _fake_scp(sandbox: Sandbox) -> dict[str, str]:
    record = sandbox.top / "scp-called"
    fake = sandbox.write("fakebin/scp", f'#!/bin/sh\necho "$@" >> {record}\nexit 1\n', mode=0o755)
    import os

    return {"PATH": f"{fake.parent}:{os.environ['PATH']}"}


@pytest.mark.parametrize("spec", sorted(USER_SPECS))
@pytest.mark.parametrize("command", sorted(KUBECONFIG_PROGS))
def test_create_kubeconfig_refuses_remote_user(sandbox: Sandbox, command: str, spec: str) -> None:
    args, prog = KUBECONFIG_PROGS[command]
    value, problem = USER_SPECS[spec]
    sandbox.refused([*args, value], 2, problem, prog=prog, env=_fake_scp(sandbox))


@pytest.mark.parametrize("address", sorted(ADDRESSES))
@pytest.mark.parametrize("command", sorted(REMOTEPLACE_PROGS))
def test_create_remoteplace_refuses_address(sandbox: Sandbox, command: str, address: str) -> None:
    args, prog = REMOTEPLACE_PROGS[command]
    value = ADDRESSES[address]
    # "--" so that click hands an address starting with "-" to podsec's own check
    result = sandbox.refused(
        [*args, "--user", "alice", "--", value], 2, prog=prog, env=_fake_scp(sandbox)
    )
    assert "invalid cluster address" in result.message and repr(value) in result.message


@pytest.mark.parametrize("option", sorted(OPTIONS))
@pytest.mark.parametrize("command", sorted(REMOTEPLACE_PROGS))
def test_create_remoteplace_refuses_option(sandbox: Sandbox, command: str, option: str) -> None:
    args, prog = REMOTEPLACE_PROGS[command]
    extra, problem = OPTIONS[option]
    sandbox.refused([*args, *extra, "192.0.2.10"], 2, problem, prog=prog, env=_fake_scp(sandbox))


@pytest.mark.parametrize(
    ("user", "address", "expected"),
    [
        ("alice", "192.0.2.1", "alice@192.0.2.1:.kube/config"),
        ("u7s-admin", "2001:db8::1", "u7s-admin@[2001:db8::1]:.kube/config"),
        ("root", "fe80::1%eth0", "root@[fe80::1%eth0]:.kube/config"),
        ("bob", "node-1.cluster.example.org", "bob@node-1.cluster.example.org:.kube/config"),
    ],
)
def test_valid_operands_pass(user: str, address: str, expected: str) -> None:
    assert ssh.scp_source(user, address, ".kube/config") == expected
