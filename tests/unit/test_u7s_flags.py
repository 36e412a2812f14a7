"""The kubeadm wrapper's argument parser: every flag honoured, bad values one-line errors."""

from __future__ import annotations

import pytest

from podsec.errors import UsageError
from podsec.u7s import flags

TOKEN = "abcdef.0123456789abcdef"
HASH = "sha256:" + "ab" * 32
KEY = "0f" * 32


def test_plain_init() -> None:
    a = flags.parse(["init"])
    assert a.command == "init" and a.planned and not a.help
    assert a.values == {} and a.passthrough == ()


def test_global_verbosity_before_the_subcommand_in_every_form() -> None:
    for argv in (["-v", "5", "init"], ["-v5", "init"], ["--v=5", "init"], ["--v", "5", "init"]):
        a = flags.parse(argv)
        assert a.verbosity == 5, argv
        assert a.passthrough == ("--v=5",), argv


def test_both_value_forms_and_list_forms() -> None:
    a = flags.parse(
        [
            "init",
            "--pod-network-cidr=10.244.0.0/16",
            "--service-cidr",
            "10.100.0.0/16",
            "--ignore-preflight-errors=Swap,NumCPU",
            "--ignore-preflight-errors",
            "Mem",
            "--skip-phases=addon/coredns",
            "--skip-phases",
            "addon/kube-proxy",
            "--dry-run",
            "--upload-certs=false",
        ]
    )
    assert a.values["pod-network-cidr"] == "10.244.0.0/16"
    assert a.values["service-cidr"] == "10.100.0.0/16"
    assert a.lists["skip-phases"] == ("addon/coredns", "addon/kube-proxy")
    assert "--ignore-preflight-errors=Swap,NumCPU,Mem" in a.passthrough
    assert "--dry-run" in a.passthrough
    assert "--upload-certs" not in a.passthrough  # =false really means off
    assert "upload-certs" not in a.booleans


@pytest.mark.parametrize(
    ("argv", "field", "name", "expected"),
    [
        (
            ["--apiserver-advertise-address", "192.168.1.5"],
            "values",
            "apiserver-advertise-address",
            "192.168.1.5",
        ),
        (["--apiserver-bind-port=7443"], "values", "apiserver-bind-port", "7443"),
        (
            ["--control-plane-endpoint", "10.0.0.100:8443"],
            "values",
            "control-plane-endpoint",
            "10.0.0.100:8443",
        ),
        (
            ["--service-dns-domain", "myorg.internal"],
            "values",
            "service-dns-domain",
            "myorg.internal",
        ),
        (["--token", TOKEN], "values", "token", TOKEN),
        (["--token-ttl", "2h30m"], "values", "token-ttl", "2h30m"),
        (["--certificate-key", KEY], "values", "certificate-key", KEY),
        (["--node-name", "master-1"], "values", "node-name", "master-1"),
        (["--kubernetes-version", "v1.20.2"], "values", "kubernetes-version", "v1.20.2"),
        (
            ["--image-repository", "registry.local/p10"],
            "values",
            "image-repository",
            "registry.local/p10",
        ),
        (
            ["--cri-socket", "unix:///run/crio/crio.sock"],
            "values",
            "cri-socket",
            "unix:///run/crio/crio.sock",
        ),
        (
            ["--feature-gates", "PublicKeysECDSA=true"],
            "values",
            "feature-gates",
            "PublicKeysECDSA=true",
        ),
        (["--cert-dir", "/etc/kubernetes/pki2"], "values", "cert-dir", "/etc/kubernetes/pki2"),
        (["--config", "/tmp/x.yaml"], "values", "config", "/tmp/x.yaml"),
        (
            ["--apiserver-cert-extra-sans", "lb.example,10.0.0.9"],
            "lists",
            "apiserver-cert-extra-sans",
            ("lb.example", "10.0.0.9"),
        ),
    ],
)
def test_init_flags_are_read_into_the_plan(argv, field, name, expected) -> None:  # type: ignore[no-untyped-def]
    a = flags.parse(["init", *argv])
    assert getattr(a, field)[name] == expected
    assert not any(p.startswith(f"--{name}") for p in a.passthrough)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--skip-token-print"], "--skip-token-print"),
        (["--skip-certificate-key-print"], "--skip-certificate-key-print"),
        (["--upload-certs"], "--upload-certs"),
        (["--dry-run"], "--dry-run"),
        (["--patches", "/etc/p"], "--patches=/etc/p"),
        (["--experimental-patches=/etc/p"], "--experimental-patches=/etc/p"),
        (["--rootfs", "/r"], "--rootfs=/r"),
        (["--log-file", "/tmp/k.log"], "--log-file=/tmp/k.log"),
        (["--skip-headers"], "--skip-headers"),
    ],
)
def test_flags_kubeadm_allows_next_to_config_pass_through(argv, expected) -> None:  # type: ignore[no-untyped-def]
    assert expected in flags.parse(["init", *argv]).passthrough


def test_every_flag_in_the_table_is_accepted() -> None:
    sample = {
        "v": "3",
        "log-file": "/l",
        "log-file-max-size": "10",
        "rootfs": "/r",
        "apiserver-advertise-address": "10.1.1.1",
        "apiserver-bind-port": "6443",
        "certificate-key": KEY,
        "config": "/c",
        "cri-socket": "/run/x.sock",
        "ignore-preflight-errors": "all",
        "node-name": "n",
        "patches": "/p",
        "experimental-patches": "/p",
        "skip-phases": "preflight",
        "token": TOKEN,
        "apiserver-cert-extra-sans": "a.b",
        "cert-dir": "/pki",
        "control-plane-endpoint": "lb:8443",
        "feature-gates": "A=true",
        "image-repository": "r.local/p",
        "kubernetes-version": "v1.20.2",
        "pod-network-cidr": "10.244.0.0/16",
        "service-cidr": "10.96.0.0/12",
        "service-dns-domain": "cluster.local",
        "token-ttl": "0",
        "discovery-file": "/d",
        "discovery-token": TOKEN,
        "discovery-token-ca-cert-hash": HASH,
        "tls-bootstrap-token": TOKEN,
    }
    for name, spec in flags.FLAGS.items():
        command = "init" if "init" in spec.commands else "join"
        extra = ["10.0.0.1:6443", "--token", TOKEN, "--discovery-token-unsafe-skip-ca-verification"]
        head = [command, *(extra if command == "join" and name != "token" else [])]
        if spec.kind == "bool":
            a = flags.parse([*head, f"--{name}"])
            assert name in a.booleans, name
        else:
            a = flags.parse([*head, f"--{name}={sample[name]}"])
            seen = (
                name in a.values
                or name in a.lists
                or any(p.startswith(f"--{name}=") for p in a.passthrough)
            )
            assert seen, name


def test_help_and_other_subcommands_pass_through_verbatim() -> None:
    for argv in (
        ["init", "--help"],
        ["-h", "init"],
        ["join", "-h"],
        ["reset", "-f"],
        ["token", "create", "--print-join-command"],
        ["version", "-o", "json"],
        ["init", "phase", "certs", "all", "--config", "x"],
        ["config", "images", "list"],
    ):
        a = flags.parse(argv)
        assert not a.planned, argv
        assert a.passthrough_argv() == argv
    assert flags.parse(["init", "--help"]).help
    assert flags.parse([]).help  # bare kubeadm prints its usage


def test_join_worker_and_control_plane() -> None:
    a = flags.parse(
        [
            "-v",
            "2",
            "join",
            "10.0.0.10:6443",
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            HASH,
        ]
    )
    assert a.command == "join" and a.positionals == ("10.0.0.10:6443",)
    assert a.lists["discovery-token-ca-cert-hash"] == (HASH,)
    assert not a.flag("control-plane")
    b = flags.parse(
        [
            "join",
            "lb.example:8443",
            f"--token={TOKEN}",
            f"--discovery-token-ca-cert-hash={HASH}",
            "--control-plane",
            "--certificate-key",
            KEY,
            "--apiserver-advertise-address",
            "10.0.0.11",
        ]
    )
    assert b.flag("control-plane") and b.values["certificate-key"] == KEY


def test_force_is_podsecs_own_flag() -> None:
    a = flags.parse(["init", "--force"])
    assert a.force and "--force" not in a.passthrough


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["init", "--pod-network-cidr", "10.244.0.0/33"], "--pod-network-cidr"),
        (["init", "--pod-network-cidr", "10.244.1.0/16"], "host bits"),
        (["init", "--service-cidr", "fd00::/108"], "IPv4"),
        (["init", "--apiserver-advertise-address", "300.1.1.1"], "IPv4"),
        (["init", "--apiserver-bind-port", "70000"], "--apiserver-bind-port"),
        (["init", "--token", "short"], "--token"),
        (["init", "--token-ttl", "soon"], "--token-ttl"),
        (["init", "--certificate-key", "xyz"], "--certificate-key"),
        (["init", "--node-name", "Bad_Name"], "--node-name"),
        (["init", "--kubernetes-version", "latest"], "--kubernetes-version"),
        (["init", "--feature-gates", "Foo"], "--feature-gates"),
        (["init", "--cri-socket", "crio.sock"], "--cri-socket"),
        (["init", "--control-plane-endpoint", "lb:99999"], "--control-plane-endpoint"),
        (["init", "--no-such-flag"], "unknown flag"),
        (["init", "--control-plane"], "unknown flag"),  # a join flag
        (["join", "10.0.0.1:6443", "--pod-network-cidr=10.0.0.0/8"], "unknown flag"),
        (["init", "--node-name"], "needs a value"),
        (["init", "extra"], "unexpected argument"),
        (["init", "--dry-run=maybe"], "true or false"),
        (["-v", "x", "init"], "--v"),
        (["--dry-run", "init"], "must follow the subcommand"),
        (["-x", "init"], "unknown shorthand"),
        (["join"], "endpoint"),
        (["join", "10.0.0.1"], "HOST:PORT"),
        (["join", "10.0.0.1:6443"], "--token"),
        (["join", "10.0.0.1:6443", "--token", TOKEN], "--discovery-token-ca-cert-hash"),
        (
            ["join", "10.0.0.1:6443", "--token", TOKEN, "--discovery-token-ca-cert-hash", "md5:1"],
            "sha256",
        ),
        (["join", "a:1", "b:2", "--token", TOKEN], "one API server endpoint"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(argv: list[str], words: str) -> None:
    with pytest.raises(UsageError) as exc:
        flags.parse(argv)
    assert words in str(exc.value)
    assert "\n" not in str(exc.value)
    assert exc.value.exit_code == 2


def test_double_dash_ends_flags() -> None:
    a = flags.parse(
        ["join", "--token", TOKEN, f"--discovery-token-ca-cert-hash={HASH}", "--", "10.0.0.1:6443"]
    )
    assert a.positionals == ("10.0.0.1:6443",)
