"""The four .debs installed with dpkg on a clean Debian 12 tree (mmdebstrap, cached; the
machine itself is never touched): maintainer scripts create the groups and u7s-admin,
idempotently; podsec doctor, podsec-create-policy, a Nagios plugin and man work there; remove
keeps the node's data, purge removes it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.tree import DEBS_IN_TREE, Overlay, debian_tree

pytestmark = [pytest.mark.debtree]


@pytest.fixture(scope="module")
def tree(debs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Overlay]:
    overlay = Overlay(debian_tree(debs), tmp_path_factory.mktemp("debtree"))
    overlay.add_debs(debs)
    r = overlay.chroot("sh", "-c", f"dpkg -i {DEBS_IN_TREE}/*.deb")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    yield overlay


def test_maintainer_scripts_create_groups_and_u7s_admin(tree: Overlay) -> None:
    r = tree.chroot("getent", "group", "podman", "podman_dev", "k8s", "u7s-admin")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 4, r.stdout
    r = tree.chroot("id", "-nG", "u7s-admin")
    assert set(r.stdout.split()) >= {"u7s-admin", "podman", "systemd-journal"}, r.stdout
    passwd = tree.chroot("getent", "passwd", "u7s-admin").stdout.split(":")
    assert passwd[5] == "/var/lib/u7s-admin" and int(passwd[2]) < 1000  # a system user
    r = tree.chroot("stat", "-c", "%U %a", "/var/lib/u7s-admin", "/var/lib/podsec/u7s/etcd")
    assert r.stdout.split("\n")[:2] == ["u7s-admin 700", "u7s-admin 700"], r.stdout
    # installing again (postinst configure once more) changes nothing
    before = tree.chroot("getent", "passwd", "u7s-admin").stdout
    r = tree.chroot("sh", "-c", f"dpkg -i {DEBS_IN_TREE}/*.deb")
    assert r.returncode == 0, r.stderr
    assert tree.chroot("getent", "passwd", "u7s-admin").stdout == before
    assert tree.chroot("id", "-nG", "u7s-admin").stdout.split().count("podman") == 1


def test_programs_are_where_the_seed_says(tree: Overlay) -> None:
    r = tree.chroot("which", "podsec", "podsec-create-policy", "podsec-inotify-check-policy")
    assert r.stdout.split() == [
        "/usr/bin/podsec",
        "/usr/bin/podsec-create-policy",
        "/usr/bin/podsec-inotify-check-policy",
    ]
    r = tree.chroot("readlink", "-f", "/usr/libexec/podsec/u7s/bin/kubeadm")
    assert r.stdout.strip() == "/usr/bin/podsec-u7s-kubeadm"


def test_podsec_doctor(tree: Overlay) -> None:
    r = tree.chroot("podsec", "doctor", "--json")
    assert r.returncode in (0, 1), r.stderr  # 1: this tree is not a ready node
    rows = json.loads(r.stdout)
    text = json.dumps(rows)
    assert "rootlesskit" in text and "Traceback" not in r.stderr


def test_podsec_create_policy(tree: Overlay) -> None:
    # 192.0.2.10 (TEST-NET-1) is this tree's own address: the registry node
    r = tree.chroot("podsec-create-policy", "192.0.2.10")
    assert r.returncode == 0, r.stderr
    policy = json.loads(tree.file("/etc/containers/policy.json").read_text())
    assert policy["default"] == [{"type": "reject"}]
    hosts = tree.file("/etc/hosts").read_text()
    assert "192.0.2.10" in hosts and "registry.local" in hosts
    assert tree.file("/var/sigstore/keys/policy.json").exists()


def test_a_nagios_plugin(tree: Overlay) -> None:
    r = tree.chroot("podsec-inotify-check-policy", "-c", "100")
    assert r.returncode in (0, 1, 2), r.stdout + r.stderr  # a verdict, never UNKNOWN
    assert r.stdout.startswith("POLICY "), r.stdout
    assert " | 'metric'=" in r.stdout.splitlines()[0]


def test_man_pages(tree: Overlay) -> None:
    r = tree.chroot("env", "MANWIDTH=80", "man", "-P", "cat", "podsec")
    assert r.returncode == 0 and "PODSEC(1)" in r.stdout and "COMMANDS" in r.stdout, r.stderr
    r = tree.chroot("env", "MANWIDTH=80", "man", "-P", "cat", "-L", "ru", "podsec-create-policy")
    assert "ИМЯ" in r.stdout and "Руководство podsec" in r.stdout, r.stdout[:500]
    r = tree.chroot("man", "-w", "podsec-inotify-check-policy", "podsec-k8s-rbac-bindrole")
    assert r.stdout.split() == [
        "/usr/share/man/man1/podsec-inotify-check-policy.1.gz",
        "/usr/share/man/man1/podsec-k8s-rbac-bindrole.1.gz",
    ]


def test_remove_keeps_data_and_purge_removes_it(tree: Overlay) -> None:
    marker = "/var/lib/u7s-admin/.local/share/usernetes/marker"
    r = tree.chroot("sh", "-c", f"mkdir -p {Path(marker).parent} && touch {marker}")
    assert r.returncode == 0
    r = tree.chroot("dpkg", "-r", "podsec-k8s")
    assert r.returncode == 0, r.stderr
    assert tree.chroot("test", "-e", marker).returncode == 0
    assert tree.chroot("test", "-d", "/var/lib/podsec/u7s/etcd").returncode == 0
    r = tree.chroot("dpkg", "--purge", "podsec-k8s")
    assert r.returncode == 0, r.stderr
    assert tree.chroot("test", "-e", "/var/lib/u7s-admin").returncode != 0
    assert tree.chroot("test", "-e", "/var/lib/podsec/u7s").returncode != 0
    # the account stays (a freed uid could be reused), podsec and its groups too
    assert tree.chroot("getent", "passwd", "u7s-admin").returncode == 0
    assert tree.chroot("podsec", "--version").returncode == 0
