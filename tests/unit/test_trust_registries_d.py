"""registries.d: both key spellings, strict keys, merging, scope resolution, URLs."""

from __future__ import annotations

import pytest

from podsec.errors import ValidationError
from podsec.trust import registries_d as rd
from podsec.trust import signature

URL = "http://sigstore.local:81/sigstore/"


def test_legacy_and_current_keys(tmp_path):
    (tmp_path / "default.yaml").write_text(
        f"default-docker:\n  sigstore: {URL}\n  sigstore-staging: file:///var/sigstore/sigstore/\n"
    )
    (tmp_path / "p10.yaml").write_text(
        "docker:\n  registry.local/p10:\n    lookaside: file:///srv/sig\n  registry.local/empty:\n    use-sigstore-attachments: false\n"
    )
    conf = rd.load_dir(tmp_path)
    assert conf.default_docker and conf.default_docker.url() == URL
    assert conf.default_docker.url(write=True) == "file:///var/sigstore/sigstore/"
    assert rd.lookaside_for(conf, "registry.local/p10/pause:3.2") == "file:///srv/sig"
    assert rd.lookaside_for(conf, "registry.local/empty/x:1") == URL  # empty section falls through
    assert (
        rd.lookaside_for(conf, "registry.local/x:1", write=True) == "file:///var/sigstore/sigstore/"
    )
    assert rd.section_for(conf, "registry.local/p10/a:1")[0] == "registry.local/p10"


OWN = rd.OWN_MARKER + " policy create\n"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        # errors for containers/image too
        (
            "docker:\n  registry.local:\n    lookaside: http://a/\n  registry.local:\n    lookaside: http://b/\n",
            "already defined",
        ),
        ("default-docker: [1]\n", "default-docker"),
        ("default-docker:\n  use-sigstore-attachments: maybe\n", "use-sigstore-attachments"),
        ("default-docker:\n  lookaside: [1]\n", "default-docker.lookaside"),
        ("a: [\n", "invalid YAML"),
    ],
)
def test_errors(tmp_path, text, field):
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ValidationError) as exc:
        rd.load_dir(tmp_path, "/etc/containers/registries.d")
    assert "/etc/containers/registries.d/bad.yaml" in exc.value.message
    assert field in exc.value.message


STRICTER = [
    ("default-docker:\n  lookasid: http://x/\n", "default-docker.lookasid"),
    ("defaults-docker:\n  lookaside: http://x/\n", "defaults-docker"),
    ("default-docker:\n  lookaside: http://x/\n  sigstore: http://y/\n", "default-docker.sigstore"),
    ("docker:\n  'Bad Scope':\n    lookaside: http://a/\n", "docker.Bad Scope"),
]


@pytest.mark.parametrize(("text", "field"), STRICTER)
def test_stricter_rules_refuse_podsecs_own_files(tmp_path, text, field):
    (tmp_path / "podsec.yaml").write_text(OWN + text)
    with pytest.raises(ValidationError) as exc:
        rd.load_dir(tmp_path, "/etc/containers/registries.d")
    assert "/etc/containers/registries.d/podsec.yaml" in exc.value.message
    assert field in exc.value.message


@pytest.mark.parametrize(("text", "field"), STRICTER)
def test_stricter_rules_only_warn_in_other_files(tmp_path, text, field):
    (tmp_path / "theirs.yaml").write_text(text)
    conf = rd.load_dir(tmp_path, "/etc/containers/registries.d")
    assert len(conf.warnings) == 1
    assert "/etc/containers/registries.d/theirs.yaml" in conf.warnings[0]
    assert field in conf.warnings[0]


@pytest.mark.parametrize(
    ("url", "write", "problem"),
    [
        (":emptyscheme", False, "missing protocol scheme"),
        ("http://x/%zz", True, "invalid URL escape"),
    ],
)
def test_bad_urls_refuse_only_the_scopes_using_them(tmp_path, url, write, problem):
    key = "lookaside-staging" if write else "lookaside"
    (tmp_path / "a.yaml").write_text(
        f"docker:\n  bad.example:\n    {key}: {url}\n  good.example:\n    {key}: file:///ok\n"
    )
    conf = rd.load_dir(tmp_path, "/etc/containers/registries.d")
    assert rd.lookaside_for(conf, "good.example/x:1", write=write) == "file:///ok"
    with pytest.raises(ValidationError) as exc:
        rd.lookaside_for(conf, "bad.example/x:1", write=write)
    assert f"a.yaml: docker.bad.example.{key}: " in exc.value.message
    assert problem in exc.value.message


def test_conflicts_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(f"default-docker:\n  lookaside: {URL}\n")
    (tmp_path / "b.yaml").write_text(f"default-docker:\n  lookaside: {URL}\n")
    with pytest.raises(
        ValidationError, match=r"b.yaml: default-docker is also defined in .*a.yaml"
    ):
        rd.load_dir(tmp_path)
    (tmp_path / "b.yaml").write_text("docker:\n  r.local:\n    lookaside: http://a/\n")
    (tmp_path / "c.yaml").write_text("docker:\n  r.local:\n    lookaside: http://b/\n")
    with pytest.raises(ValidationError, match=r"docker.r.local is also defined"):
        rd.load_dir(tmp_path)


def test_render_round_trip():
    conf = rd.RegistriesD(
        rd.Section(URL, "file:///var/sigstore/sigstore/"),
        {"registry.local/a": rd.Section("file:///x/")},
    )
    text = rd.render(conf, "podsec")
    assert "  sigstore: http://sigstore.local:81/sigstore/\n" in text
    again = rd.parse(text, "x.yaml")
    assert again.default_docker and conf.default_docker
    assert again.default_docker.url() == conf.default_docker.url()
    assert again.default_docker.url(write=True) == conf.default_docker.url(write=True)
    assert {k: v.url() for k, v in again.docker.items()} == {"registry.local/a": "file:///x/"}


def test_signature_urls():
    d = "sha256:" + "ab" * 32
    assert (
        rd.signature_url(URL, "p10/pause", d, 2)
        # containers/image appends "/" + folder to the base as written: a double slash
        == f"http://sigstore.local:81/sigstore//p10/pause@sha256={'ab' * 32}/signature-2"
    )
    assert signature.fetch_signatures("file:///nonexistent-dir/", "a/b", d) == []
