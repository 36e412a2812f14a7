from pathlib import Path

import pytest

from podsec import config
from podsec.errors import ConfigError


def test_defaults(tmp_path: Path) -> None:
    s = config.load(tmp_path, environ={})
    assert s.root == tmp_path
    assert s.registry is None  # unset: chosen automatically later
    assert s.trivy_server == "trivy.local"
    assert s.cni_plugin == "flannel"


def test_registry_set_but_empty_is_kept_distinct_from_unset(tmp_path: Path) -> None:
    assert config.load(tmp_path, environ={"U7S_REGISTRY": ""}).registry == ""
    explicit = config.load(tmp_path, environ={"U7S_REGISTRY": "registry.example/p10"})
    assert explicit.registry == "registry.example/p10"


def test_file_then_env(tmp_path: Path) -> None:
    cfg = tmp_path / "etc/podsec/podsec.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(
        '[u7s]\nplatform = "c10f"\nkube_version = "v1.26.3"\n[monitor]\nmailto = "root"\n'
    )
    s = config.load(tmp_path, environ={"U7S_PLATFORM": "p11"})
    assert s.platform == "p11"  # environment wins
    assert s.kube_version == "v1.26.3"
    assert s.mailto == "root"
    assert s.config_file == cfg


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"U7S_KUBEVERSION": "1.26.3"}, "U7S_KUBEVERSION"),
        ({"U7S_SETAVAILABLEIMAGES": "maybe"}, "U7S_SETAVAILABLEIMAGES"),
        ({"U7S_CNI_PLUGIN": "weave"}, "U7S_CNI_PLUGIN"),
        ({"U7S_REGISTRY": "bad registry"}, "U7S_REGISTRY"),
        ({"U7S_TRIVY_SERVER": "http://x"}, "U7S_TRIVY_SERVER"),
    ],
)
def test_bad_environment_values(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        config.load(tmp_path, environ=env)
    assert fragment in err.value.message
    assert err.value.exit_code == 2


def test_invalid_toml_and_unknown_key(tmp_path: Path) -> None:
    cfg = tmp_path / "etc/podsec/podsec.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("[u7s\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        config.load(tmp_path, environ={})
    cfg.write_text('[u7s]\nregistri = "x"\n')
    with pytest.raises(ConfigError, match="unknown key registri"):
        config.load(tmp_path, environ={})


def test_bad_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        config.load(tmp_path / "missing", environ={})


def test_podsec_environment_seams_come_through_settings(tmp_path: Path) -> None:
    s = config.load(tmp_path, environ={})
    assert (s.u7s_user, s.kubeadm, s.trivy, s.u7s_oci_images) == ("u7s-admin", None, "trivy", None)
    env = {
        "PODSEC_U7S_USER": "u7s-test",
        "PODSEC_KUBEADM": "/opt/k8s/kubeadm",
        "PODSEC_TRIVY": "/opt/trivy",
        "PODSEC_U7S_OCI_IMAGES": "/srv/oci",
    }
    s = config.load(tmp_path, environ=env)
    assert (s.u7s_user, s.kubeadm, s.trivy, s.u7s_oci_images) == (
        "u7s-test",
        "/opt/k8s/kubeadm",
        "/opt/trivy",
        Path("/srv/oci"),
    )
    with pytest.raises(ConfigError, match="PODSEC_U7S_USER"):
        config.load(tmp_path, environ={"PODSEC_U7S_USER": "Bad User"})
    assert config.debug_requested({"PODSEC_DEBUG": "1"})
    assert not config.debug_requested({"PODSEC_DEBUG": "0"})
    assert not config.debug_requested({})
