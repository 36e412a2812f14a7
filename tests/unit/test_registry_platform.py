"""U7S_PLATFORM from env or /etc/os-release; U7S_REGISTRY exactly as SPEC.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from podsec import config
from podsec.errors import UsageError
from podsec.host.paths import Host
from podsec.registry import platform

C10F = 'NAME="ALT SP Server"\nALT_BRANCH_ID=c10f2\nCPE_NAME="cpe:/o:alt:spserver:10"\n'
P10 = 'NAME="ALT Server"\nCPE_NAME="cpe:/o:alt:server:10.1"\n'
P11_BRANCH = "ALT_BRANCH_ID=p11\nCPE_NAME=cpe:/o:alt:server:11\n"
SISYPHUS = 'CPE_NAME="cpe:/o:alt:sisyphus:20250101"\n'
SPSERVER_NO_BRANCH = 'CPE_NAME="cpe:/o:alt:spserver:10"\n'
DEBIAN = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'


def _host(root: Path, os_release: str | None, local_registry: bool = False) -> Host:
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    if os_release is not None:
        (etc / "os-release").write_text(os_release)
    hosts = "127.0.0.1 localhost\n"
    if local_registry:
        hosts += "192.168.122.80 registry.local sigstore.local\n"
    (etc / "hosts").write_text(hosts)
    return Host(root)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (C10F, "c10f"),
        (P10, "p10"),
        (P11_BRANCH, "p11"),
        (SISYPHUS, "sisyphus"),
        (SPSERVER_NO_BRANCH, "c10f"),
        (DEBIAN, None),
        ("", None),
    ],
)
def test_platform_from_os_release(tmp_path: Path, text: str, expected: str | None) -> None:
    host = _host(tmp_path, text)
    assert platform.platform_from_os_release(platform.os_release(host)) == expected


def test_debian_gets_the_documented_default(tmp_path: Path) -> None:
    host = _host(tmp_path, DEBIAN)
    assert platform.detect_platform(config.Settings(root=tmp_path), host) == "p10"
    host = _host(tmp_path / "none", None)
    assert platform.detect_platform(config.Settings(), host) == platform.DEFAULT_PLATFORM


def test_env_platform_wins(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F)
    s = config.load(tmp_path, {"U7S_PLATFORM": "p11"})
    assert platform.detect_platform(s, host) == "p11"


def test_unset_registry_prefers_registry_local_from_etc_hosts(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F, local_registry=True)
    src = platform.choose(config.load(tmp_path, {}), host)
    assert (src.registry, src.platform, src.repository) == (
        "registry.local",
        "c10f",
        "registry.local/k8s-c10f1",  # the seed's name (CPE_NAME with spserver)
    )
    assert src.flannel_repository == "registry.local/k8s-c10f1"
    assert not src.explicit


def test_unset_registry_without_local_uses_altlinux(tmp_path: Path) -> None:
    host = _host(tmp_path, P10)
    src = platform.choose(config.load(tmp_path, {}), host)
    assert src.repository == "registry.altlinux.org/k8s-p10"


def test_set_but_empty_registry_is_upstream_without_platform(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F, local_registry=True)
    src = platform.choose(config.load(tmp_path, {"U7S_REGISTRY": ""}), host)
    assert src.repository == "registry.k8s.io" and src.platform is None
    # flannel is not on registry.k8s.io: docker.io/flannel, no double slash (defect 20)
    assert src.flannel_repository == "docker.io/flannel"


def test_explicit_registry_is_honoured_even_with_registry_local_in_hosts(tmp_path: Path) -> None:
    host = _host(tmp_path, P10, local_registry=True)
    src = platform.choose(config.load(tmp_path, {"U7S_REGISTRY": "registry.altlinux.org"}), host)
    assert src.repository == "registry.altlinux.org/p10"  # the original overrode it (defect 18)


def test_explicit_registry_with_path_is_the_whole_repository(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F, local_registry=True)
    src = platform.choose(config.load(tmp_path, {"U7S_REGISTRY": "registry.local/k8s-c10f1"}), host)
    assert src.repository == "registry.local/k8s-c10f1" and src.registry == "registry.local"
    assert src.without_registry("registry.local/k8s-c10f1/pause:3.9") == "k8s-c10f1/pause:3.9"


def test_explicit_upstream_host_gets_no_platform(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F)
    src = platform.choose(config.load(tmp_path, {"U7S_REGISTRY": "registry.k8s.io"}), host)
    assert src.repository == "registry.k8s.io"


def test_k8s_platform_names_are_the_seeds_paths(tmp_path: Path) -> None:
    """issue 16: the seed's k8s-c10f1 / k8s-p10 are accepted as given, never refused or
    rewritten; both spellings name one platform."""
    host = _host(tmp_path, P10)
    src = platform.choose(config.load(tmp_path, {"U7S_PLATFORM": "k8s-c10f2"}), host)
    assert src.repository == "registry.altlinux.org/k8s-c10f2"
    assert platform.seed_path("c10f") == "k8s-c10f1" and platform.seed_path("p10") == "k8s-p10"
    assert platform.same_platform("k8s-c10f1", "c10f") and platform.same_platform("p10", "k8s-p10")
    assert not platform.same_platform("p10", "c10f")


@pytest.mark.parametrize(
    ("os_release", "local", "repository"),
    [
        (C10F, True, "registry.local/k8s-c10f1"),
        (SPSERVER_NO_BRANCH, False, "registry.altlinux.org/k8s-c10f1"),
        (P10, True, "registry.local/k8s-p10"),
        (DEBIAN, False, "registry.altlinux.org/k8s-p10"),
    ],
)
def test_default_repositories_are_the_seeds(
    tmp_path: Path, os_release: str, local: bool, repository: str
) -> None:
    """The seed: prefix registry.local/ when /etc/hosts names it, else registry.altlinux.org/;
    suffix k8s-c10f1 when CPE_NAME has spserver, else k8s-p10."""
    host = _host(tmp_path, os_release, local_registry=local)
    assert platform.choose(config.load(tmp_path, {}), host).repository == repository


def test_image_repository_flag(tmp_path: Path) -> None:
    src = platform.from_repository("myreg:5000/k8s/")
    assert (src.registry, src.repository, src.path) == ("myreg:5000", "myreg:5000/k8s", "k8s")
    assert platform.from_repository("registry.k8s.io").flannel_repository == "docker.io/flannel"


RHEL9 = 'ID="rhel"\nVERSION_ID="9.4"\nCPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"\n'


@pytest.mark.parametrize(
    ("os_release", "expected"),
    [
        # save-k8s' former copy (registry/naming.detect_platform) was tested on these
        ('ALT_BRANCH_ID="c10f2"\n', "c10f"),
        ("ALT_BRANCH_ID=p11\n", "p11"),
        ('CPE_NAME="cpe:/o:alt:spserver:10"\n', "c10f"),
        ('CPE_NAME="cpe:/o:alt:sisyphus:20250101"\n', "sisyphus"),
        ('CPE_NAME="cpe:/o:alt:workstation:10.2"\n', "p10"),
        ('ID=debian\nVERSION_ID="12"\n', None),
        # …which turned any vendor's CPE into p<major>: RHEL 9 is no ALT p9
        (RHEL9, None),
    ],
)
def test_detected_platform_for_the_archive_builder(
    tmp_path: Path, os_release: str, expected: str | None
) -> None:
    host = _host(tmp_path, os_release)
    assert platform.detected_platform(config.Settings(), host) == expected


def test_rhel9_node_gets_the_default_not_p9(tmp_path: Path) -> None:
    host = _host(tmp_path, RHEL9)
    assert platform.detect_platform(config.Settings(), host) == "p10"
    assert (
        platform.choose(config.load(tmp_path, {}), host).repository
        == "registry.altlinux.org/k8s-p10"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"U7S_REGISTRY": "registry.local"},
        {"U7S_REGISTRY": ""},
        {"U7S_REGISTRY": "registry.local/k8s-c10f1"},
        {"U7S_REGISTRY": "registry.k8s.io"},
        {"U7S_PLATFORM": "p11", "U7S_REGISTRY": "registry.altlinux.org"},
    ],
)
def test_archive_builder_and_node_agree_when_the_registry_is_given(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """save-k8s (default registry altlinux) and kubeadm init choose the same repository for
    every explicit U7S_REGISTRY; the archive builder had its own copy that appended the
    platform to a value with a path (registry.local/k8s-c10f1/c10f)."""
    host = _host(tmp_path, C10F, local_registry=True)
    settings = config.load(tmp_path, env)
    node = platform.choose(settings, host)
    archive = platform.choose(settings, host, default_registry=platform.ALT_REGISTRY)
    assert archive == node


def test_archive_builder_keeps_the_altlinux_default(tmp_path: Path) -> None:
    host = _host(tmp_path, C10F, local_registry=True)
    settings = config.load(tmp_path, {})
    assert platform.choose(settings, host).repository == "registry.local/k8s-c10f1"
    src = platform.choose(settings, host, default_registry=platform.ALT_REGISTRY)
    assert src.repository == "registry.altlinux.org/k8s-c10f1"
    assert platform.choose(settings, host, platform="p11").repository == "registry.local/k8s-p11"


def test_archive_platform_is_this_systems_unless_given(tmp_path: Path) -> None:
    """save-k8s' platform rule (it lived in the CLI): this system's by default; another one
    only when confirmed; the seed's k8s-p10 is this system's p10 and is not asked about."""
    settings = config.Settings()
    host = _host(tmp_path, P10)
    asked: list[str] = []

    def no(question: str) -> bool:
        asked.append(question)
        return False

    assert platform.for_archive(settings, host, None, confirm=no) == "p10"
    assert platform.for_archive(settings, host, "p10", confirm=no) == "p10"
    assert platform.for_archive(settings, host, "k8s-p10", confirm=no) == "k8s-p10"
    assert asked == []
    assert platform.for_archive(settings, host, "c10f", confirm=lambda q: True) == "c10f"
    with pytest.raises(UsageError, match="differs from this system's p10") as err:
        platform.for_archive(settings, host, "c10f", confirm=no)
    assert asked and "continue?" in asked[0]
    assert "--yes" in (err.value.hint or "")
    # Debian: p10, as the node (issue 16: save-k8s asked for a platform)
    assert platform.for_archive(settings, _host(tmp_path / "d", DEBIAN), None, confirm=no) == "p10"
    # an unknown system asks nothing about a given platform
    assert (
        platform.for_archive(settings, _host(tmp_path / "e", DEBIAN), "c10f", confirm=no) == "c10f"
    )
