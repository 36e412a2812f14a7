"""Messages and exit codes (issue 15): a bad command-line argument exits 2 — never 1 —
and is checked locally before anything is contacted (``--expiration 99999y`` is not sent to
the API server); the message names the offending item (``all,foo`` names ``foo``); and in
Russian, click's own messages ("is not one of", "Did you mean") are Russian too.
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import Sandbox

BIND = ("alice", "clusterrole", "view", "alice-view")
USAGE = {
    "bind user a;b": (("rbac", "bind", "a;b", *BIND[1:]), "'a;b'"),
    "bind role type a;b": (("rbac", "bind", "alice", "a;b", "view", "v"), "'a;b'"),
    "bind binding a;b": (("rbac", "bind", *BIND[:3], "a;b"), "'a;b'"),
    "bind namespace a;b": (("rbac", "bind", "alice", "role", "view", "v", "a;b"), "'a;b'"),
    "bind role a/b": (("rbac", "bind", "alice", "clusterrole", "a/b", "v"), "'a/b'"),
    "unbind user a;b": (("rbac", "unbind", "a;b", *BIND[1:]), "'a;b'"),
    "unbind binding a;b": (("rbac", "unbind", *BIND[:3], "a;b"), "'a;b'"),
    "create-kubeconfig expiration 99999y": (
        ("rbac", "create-kubeconfig", "alice", "--expiration", "99999y"),
        "99999y",
    ),
    "create-kubeconfig expiration 5s": (
        ("rbac", "create-kubeconfig", "alice", "--expiration", "5s"),
        "600",
    ),
    "create-kubeconfig expiration abc": (
        ("rbac", "create-kubeconfig", "alice", "--expiration", "abc"),
        "'abc'",
    ),
    "renew expiration 99999y": (("rbac", "renew", "alice", "--expiration", "99999y"), "99999y"),
    "renew within 1x": (("rbac", "renew", "alice", "--within", "1x"), "'1x'"),
    "save --level 42": (("images", "save", "{top}/o", "amd64", "--level", "42", "a/b:1"), "42"),
    "save --level -1": (("images", "save", "{top}/o", "amd64", "--level", "-1", "a/b:1"), "-1"),
    "save --zstd --level 0": (
        ("images", "save", "{top}/o", "amd64", "--zstd", "--level", "0", "a/b:1"),
        "--level 0",
    ),
    "save --zstd --level 23": (
        ("images", "save", "{top}/o", "amd64", "--zstd", "--level", "23", "a/b:1"),
        "23",
    ),
    "save all,foo": (("images", "save", "{top}/o", "all,foo", "a/b:1"), "'foo'"),
    "save foo,all": (("images", "save", "{top}/o", "foo,all", "a/b:1"), "'foo'"),
    "save all,amd64": (("images", "save", "{top}/o", "all,amd64", "a/b:1"), "'all'"),
    "save amd64,,arm64": (("images", "save", "{top}/o", "amd64,,arm64", "a/b:1"), "''"),
    "load-sign all": (("images", "load-sign", "{top}/a.tar", "all", "m@example.org"), "'all'"),
    "load-sign amd64,arm64": (
        ("images", "load-sign", "{top}/a.tar", "amd64,arm64", "m@example.org"),
        "amd64,arm64",
    ),
    "lb add-server bad port": (("lb", "add-server", "m2", "192.0.2.2", "--port", "x"), "'x'"),
    "lb check-apiserver --vip 300.1.1.1": (("lb", "check-apiserver", "--vip", "300.1.1.1"), "300"),
    "lb check-apiserver --port 0": (
        ("lb", "check-apiserver", "--vip", "10.0.0.10", "--port", "0"),
        "--port",
    ),
    "lb keepalived --priority 255": (
        (
            "lb",
            "keepalived",
            "--cluster",
            "c.yaml",
            "--state",
            "MASTER",
            "--priority",
            "255",
            "--interface",
            "eth0",
        ),
        "255",
    ),
    "unknown option": (("doctor", "--bogus"), "--bogus"),
    "unknown command": (("rbac", "bogus"), "bogus"),
    "bad choice": (("rbac", "create-kubeconfig", "alice", "--key-type", "dsa"), "dsa"),
}


@pytest.mark.parametrize("case", sorted(USAGE))
def test_bad_argument_exits_2_naming_it(sandbox: Sandbox, case: str) -> None:
    args, named = USAGE[case]
    argv = [a.format(top=sandbox.top) for a in args]
    result = sandbox.refused(argv, 2, named)
    assert "API" not in result.message  # refused before anything was contacted


ENGLISH = (
    "is not one of",
    "is not a valid",
    "Did you mean",
    "No such option",
    "No such command",
    "Got unexpected extra",
    "requires an argument",
    "Missing argument",
    "Missing option",
    "Invalid value",
    "Try '",
)
RUSSIAN = {
    "bad choice": ("rbac", "create-kubeconfig", "alice", "--key-type", "dsa"),
    "typo in a command": ("rbac", "creat-user"),
    "typo in an option": ("doctor", "--no-tool"),
    "extra argument": ("doctor", "extra"),
    "option without its value": ("lb", "add-server", "--port"),
    "not an integer": ("lb", "add-server", "m2", "192.0.2.2", "--port", "x"),
    "not a float": ("rbac", "create-kubeconfig", "alice", "--timeout", "x"),
    "below the range": ("rbac", "create-kubeconfig", "alice", "--timeout", "0"),
    "missing argument": (
        "rbac",
        "create-user",
    ),
    "missing option": ("lb", "haproxy"),
    "bad choice in a group option": ("lb", "keepalived", "--cluster", "c", "--state", "X"),
}


@pytest.mark.parametrize("case", sorted(RUSSIAN))
def test_clicks_own_messages_are_russian(sandbox: Sandbox, case: str) -> None:
    result = sandbox.refused(RUSSIAN[case], 2, env={"LANG": "ru_RU.UTF-8"})
    for english in ENGLISH:
        assert english not in result.message, result.message
    assert any("\u0400" <= c <= "\u04ff" for c in result.message), result.message
