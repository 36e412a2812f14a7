"""Names for archives: arches, references, transports, load targets, platform detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from podsec.errors import UsageError
from podsec.registry import naming
from podsec.registry.archive import group_layers
from podsec.registry.compress import Member, segments
from podsec.trust import reference


def test_arches_every_element_validated() -> None:
    assert naming.parse_arches("all") == ("amd64", "arm64", "arm", "ppc64le", "386")
    assert naming.parse_arches("amd64,arm64") == ("amd64", "arm64")
    assert naming.parse_arches("x86_64,amd64") == ("amd64",)
    # the original checked only the first element
    with pytest.raises(UsageError, match="sparc"):
        naming.parse_arches("amd64,sparc")
    with pytest.raises(UsageError):
        naming.check_arch("amd64,arm64")
    assert naming.check_arch("aarch64") == "arm64"


@pytest.mark.parametrize("arch", ["sparc", "all", "amd64,arm64"])
def test_one_arch_hint_offers_only_what_is_accepted(arch: str) -> None:
    """issue 16: load-sign's wrong-arch message offered `all` and comma lists it refuses."""
    with pytest.raises(UsageError) as exc:
        naming.check_arch(arch)
    hint = exc.value.hint or ""
    assert "amd64" in hint and "all" not in hint and "comma" not in hint


@pytest.mark.parametrize(
    ("text", "host", "repo", "tag"),
    [
        (
            "registry.local/p10/kube-apiserver:v1.20.2",
            "registry.local",
            "p10/kube-apiserver",
            "v1.20.2",
        ),
        ("c10f/pause:3.9", "", "c10f/pause", "3.9"),
        ("localhost/x", "localhost", "x", None),
        ("127.0.0.1:5000/a/b:1", "127.0.0.1:5000", "a/b", "1"),
        ("flannel/flannel:v0.19.2", "", "flannel/flannel", "v0.19.2"),
    ],
)
def test_parse_reference(text: str, host: str, repo: str, tag: str | None) -> None:
    ref = naming.parse_reference(text)
    assert (ref.host, ref.repo, ref.tag) == (host, repo, tag)
    assert str(ref) == text


@pytest.mark.parametrize("bad", ["", "UPPER/x:1", "a//b", "x:bad tag", "a@sha256:123"])
def test_parse_reference_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        naming.parse_reference(bad)


def test_transports_and_sources(tmp_path: Path) -> None:
    assert naming.is_transport("docker://")
    assert naming.is_transport("containers-storage:")
    assert naming.is_transport("containers-storage:[vfs@/a+/b]")
    assert naming.is_transport(f"oci:{tmp_path}")
    assert not naming.is_transport("registry.local/p10/pause:3.2")
    assert not naming.is_transport("oci:/does/not/exist")
    assert naming.normalise_transport("docker:") == "docker://"
    src = naming.split_source("c10f/etcd:3.5", "docker://")
    assert src.skopeo == "docker://c10f/etcd:3.5"
    oci = naming.split_source("p10/pause:3.2", f"oci:{tmp_path}")
    assert oci.skopeo == f"oci:{tmp_path}:p10/pause:3.2"
    own = naming.split_source("containers-storage:[vfs@/s+/r]x/y:1", "docker://")
    assert own == naming.Source("containers-storage:[vfs@/s+/r]", "x/y:1")
    with_oci = naming.split_source(f"oci:{tmp_path}:p10/a:1", "docker://")
    assert with_oci == naming.Source(f"oci:{tmp_path}", "p10/a:1")


def test_stored_names_drop_the_registry() -> None:
    assert naming.stored_name("registry.local/p10/pause:3.2") == "p10/pause:3.2"
    assert naming.stored_name("c10f/pause:3.9") == "c10f/pause:3.9"


def test_load_targets_as_the_original() -> None:
    # 3 arguments: registry.local/<archive platform>
    t = naming.target_for("c10f/kube-apiserver:v1.26.9", "c10f", None)
    assert str(t) == "registry.local/c10f/kube-apiserver:v1.26.9"
    # 4 arguments: refs below the platform go under REGISTRY/PATH
    target = naming.parse_target("registry.local/k8s-test")
    t = naming.target_for("c10f/pause:3.9", "c10f", target)
    assert str(t) == "registry.local/k8s-test/pause:3.9"
    # other refs keep their own path on the registry
    t = naming.target_for("alt/alt:p10", "c10f", target)
    assert str(t) == "registry.local/alt/alt:p10"


@pytest.mark.parametrize("bad", ["registry.local", "c10f/pause", "registry.local/"])
def test_parse_target_rejects(bad: str) -> None:
    with pytest.raises(UsageError):
        naming.parse_target(bad)


def test_group_layers_balances_two_blocks() -> None:
    # the harness's k8s set (MB): apiserver, controller-manager, proxy, scheduler, etcd, ...
    sizes = {"api": 110, "cm": 104, "proxy": 42, "sched": 41, "etcd": 40, "bb": 2, "pause": 1}
    groups = group_layers(sizes)
    assert len(groups) == 2
    assert groups[0] == ["api", "cm"]  # the twins share one dictionary
    assert sorted(d for g in groups for d in g) == sorted(sizes)
    # without twins: largest first into the lighter group
    flat = {"a": 30, "b": 25, "c": 20, "d": 15, "e": 10}
    loads = [sum(flat[d] for d in g) for g in group_layers(flat)]
    assert max(loads) / sum(loads) < 0.56
    # two similar big layers go together when that still balances
    even = {"a": 50, "b": 50, "c": 40, "d": 40, "e": 20}
    assert set(group_layers(even)[0][:2]) == {"a", "b"}
    assert group_layers({"only": 5}) == [["only"]]


def test_segments_cut_after_the_split_indexes() -> None:
    members = [Member("a/"), Member("a/x", Path("x"), 1), Member("a/y", Path("y"), 1024)]
    assert segments(members, [1]) == [members[:2], members[2:]]
    assert segments(members, []) == [members]
    assert segments(members, [2]) == [members]


@pytest.mark.parametrize(
    ("host", "plain"),
    [
        ("registry.local", True),
        ("registry.local:5000", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("192.168.122.80", True),
        ("10.0.0.1:80", True),
        ("[::1]:5000", True),
        ("[fd00::1]", True),
        # the u7s copies disagreed here: node pulls and tag look-ups took any dotted digits
        # (a public address) as plain HTTP, the admission webhook did not
        ("8.8.8.8", False),
        ("8.8.8.8:5000", False),
        ("[2a00:1450::1]:443", False),
        ("registry.altlinux.org", False),
        ("registry.k8s.io", False),
        ("docker.io", False),
    ],
)
def test_plain_http(host: str, plain: bool) -> None:
    assert reference.plain_http(host) is plain
    from podsec.registry import client

    assert client.base_url(host).startswith("http://" if plain else "https://")


def test_save_sources_take_the_leading_transport(tmp_path: Path) -> None:
    """save's ``[TRANSPORT] IMAGE...`` (parsed in the CLI before)."""
    plain = naming.parse_sources(["registry.local/p10/a:1", "containers-storage:b:2"])
    assert [(s.transport, s.image) for s in plain] == [
        ("docker://", "registry.local/p10/a:1"),
        ("containers-storage:", "b:2"),
    ]
    layout = tmp_path / "layout"
    layout.mkdir()
    from_oci = naming.parse_sources([f"oci:{layout}", "c10f/etcd:3.5.9-0"])
    assert [(s.transport, s.image) for s in from_oci] == [(f"oci:{layout}", "c10f/etcd:3.5.9-0")]
    assert naming.parse_sources(["docker:", "x/y:1"])[0].transport == "docker://"
    with pytest.raises(UsageError, match="no images given after the transport"):
        naming.parse_sources(["docker://"])
    with pytest.raises(UsageError):
        naming.parse_sources(["Bad Name"])
    assert naming.check_transport("docker:") == "docker://"
    with pytest.raises(UsageError, match="--source nope: not a transport"):
        naming.check_transport("nope")
