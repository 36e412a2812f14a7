"""registries.d cases (docker/registries_d_test.go), as data. Directories named ``fixture``
are tests/conformance/fixtures/containers-image/docker/registries.d (copied)."""

from __future__ import annotations

from typing import Any

from handmade import Write

FILE = "docker/registries_d_test.go"


def registries_tables(write: Write) -> None:
    rows: list[dict[str, Any]] = []
    for case, d, ref, expected in [
        (
            "error reading the configuration directory (not a directory)",
            "/dev/null",
            "busybox",
            None,
        ),
        (
            "no match found: the default user storage base",
            "(empty)",
            "this/is/not/in/the:configuration",
            "file://$HOME/.local/share/containers/sigstore/this/is/not/in/the",
        ),  # filepath.Join cleans the //
        ("invalid URL", "fixture", "localhost/invalid/url/test", None),
        (
            "absolute path without a scheme",
            "fixture",
            "localhost/file/path/test",
            "/no/scheme/just/a/path/file/path/test",
        ),
        (
            "relative path without a scheme",
            "fixture",
            "localhost/relative/path/test",
            "no/scheme/relative/path/relative/path/test",
        ),
        (
            "success",
            "fixture",
            "example.com/my/project",
            "https://lookaside.example.com/my/project",
        ),
    ]:
        rows.append(
            {
                "function": "TestSignatureStorageBaseURL",
                "case": case,
                "dir": d,
                "ref": ref,
                "expected": expected,
            }
        )
    write(
        "registries_base_url",
        FILE,
        "TestSignatureStorageBaseURL",
        rows,
        "the lookaside base URL for an image (expected null: an error); tested as a non-root user",
    )

    merged = {
        "default-docker": {
            "lookaside": "file:///mnt/companywide/signatures/for/other/repositories"
        },
        "docker": {
            "example.com": {"lookaside": "https://lookaside.example.com"},
            "registry.test.example.com": {
                "lookaside": "http://registry.test.example.com/lookaside"
            },
            "registry.test.example.com:8888": {
                "lookaside": "http://registry.test.example.com:8889/lookaside",
                "lookaside-staging": "https://registry.test.example.com:8889/lookaside/specialAPIserverWhichDoesNotExist",
            },
            "localhost": {"lookaside": "file:///home/mitr/mydevelopment1"},
            "localhost:8080": {"lookaside": "file:///home/mitr/mydevelopment2"},
            "localhost/invalid/url/test": {"lookaside": ":emptyscheme"},
            "localhost/file/path/test": {"lookaside": "/no/scheme/just/a/path"},
            "localhost/relative/path/test": {"lookaside": "no/scheme/relative/path"},
            "docker.io/contoso": {"lookaside": "https://lookaside.contoso.com/fordocker"},
            "docker.io/centos": {"lookaside": "https://lookaside.centos.org/"},
            "docker.io/centos/mybetaproduct": {
                "lookaside": "http://localhost:9999/mybetaWIP/lookaside",
                "lookaside-staging": "file:///srv/mybetaWIP/lookaside",
            },
            "docker.io/centos/mybetaproduct:latest": {"lookaside": "https://lookaside.centos.org/"},
        },
    }
    rows = [
        {"case": "no registries.d exists", "files": None, "ok": True, "expected": {"docker": {}}},
        {"case": "empty registries.d", "files": {}, "ok": True, "expected": {"docker": {}}},
        {"case": "invalid YAML", "files": {"0.yaml": "}"}, "ok": False},
        {
            "case": "duplicate default-docker",
            "files": {
                "0.yaml": "default-docker:\n lookaside: file:////tmp/something",
                "1.yaml": "default-docker:\n lookaside: file:////tmp/different",
            },
            "ok": False,
            "error_names": ["0.yaml", "1.yaml"],
        },
        {
            "case": "duplicate namespace",
            "files": {
                "0.yaml": "docker:\n example.com:\n  lookaside: file:////tmp/something",
                "1.yaml": "docker:\n example.com:\n  lookaside: file:////tmp/different",
            },
            "ok": False,
            "error_names": ["0.yaml", "1.yaml"],
        },
        {
            "case": "a fully worked example, with an empty-dictionary file and a non-.yaml file",
            "files": "fixture",
            "ok": True,
            "expected": merged,
        },
    ]
    write(
        "registries_merge",
        FILE,
        "TestLoadAndMergeConfig",
        rows,
        "the unreadable-directory and unreadable-file cases are not ported: this suite runs as root, which reads them",
    )

    rows = []
    config = {
        "default-docker": {"lookaside": "=default", "lookaside-staging": "=default+w"},
        "docker": {},
    }
    for ns in [
        "localhost",
        "localhost:5000",
        "example.com",
        "example.com/ns1",
        "example.com/ns1/ns2",
        "example.com/ns1/ns2/repo",
        "example.com/ns1/ns2/repo:notlatest",
    ]:
        config["docker"][ns] = {"lookaside": ns, "lookaside-staging": ns + "+w"}
    cases = []
    for inp, exp in [
        ("example.com/ns1/ns2/repo:notlatest", "example.com/ns1/ns2/repo:notlatest"),
        ("example.com/ns1/ns2/repo:unmatched", "example.com/ns1/ns2/repo"),
        ("example.com/ns1/ns2/notrepo:notlatest", "example.com/ns1/ns2"),
        ("example.com/ns1/notns2/repo:notlatest", "example.com/ns1"),
        ("example.com/notns1/ns2/repo:notlatest", "example.com"),
        ("unknown.example.com/busybox", "=default"),
        ("localhost:5000/busybox", "localhost:5000"),
        ("localhost/busybox", "localhost"),
        ("localhost:9999/busybox", "=default"),
    ]:
        cases += [
            {"input": inp, "write": False, "expected": exp},
            {"input": inp, "write": True, "expected": exp + "+w"},
        ]
    rows.append({"config": config, "cases": cases})
    rows.append(
        {
            "config": {"docker": {"unmatched": {"lookaside": "a", "lookaside-staging": "b"}}},
            "cases": [
                {"input": "thisisnotmatched", "write": False, "expected": ""},
                {"input": "thisisnotmatched", "write": True, "expected": ""},
            ],
        }
    )
    write(
        "registries_top_level",
        FILE,
        "TestRegistryConfigurationSignatureTopLevel",
        rows,
        'expected "": no configured URL (the built-in default applies)',
    )

    rows = []
    for ns, w, exp in [
        ({"lookaside-staging": "a", "lookaside": "b"}, True, "a"),
        ({"lookaside-staging": "a", "lookaside": "b"}, False, "b"),
        ({"lookaside": "b"}, True, "b"),
        ({"lookaside": "b"}, False, "b"),
        ({"lookaside-staging": "a"}, True, "a"),
        ({"lookaside-staging": "a"}, False, ""),
        ({}, True, ""),
        ({}, False, ""),
        (
            {"lookaside-staging": "a", "lookaside": "b", "sigstore-staging": "c", "sigstore": "d"},
            True,
            "a",
        ),
        ({"lookaside": "b", "sigstore-staging": "c", "sigstore": "d"}, True, "c"),
        ({"lookaside": "b", "sigstore": "d"}, True, "b"),
        ({"sigstore": "d"}, True, "d"),
        (
            {"lookaside-staging": "a", "lookaside": "b", "sigstore-staging": "c", "sigstore": "d"},
            False,
            "b",
        ),
        ({"lookaside": "b", "sigstore-staging": "c", "sigstore": "d"}, False, "b"),
        ({"lookaside": "b", "sigstore": "d"}, False, "b"),
        ({"sigstore": "d"}, False, "d"),
    ]:
        rows.append({"section": ns, "write": w, "expected": exp})
    write(
        "registries_section_top_level",
        FILE,
        "TestRegistryNamespaceSignatureTopLevel",
        rows,
        "lookaside vs legacy sigstore precedence, for reading and writing",
    )

    md = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    mapped = "sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    rows = [
        {"base": b, "digest": md, "index": i, "expected": f"{b}@{mapped}/signature-{i + 1}"}
        for b in ("file:///tmp", "https://localhost:5555/root", "http://localhost:5555/root")
        for i in (0, 1)
    ]
    rows.append({"base": "file:///tmp", "digest": "sha256:../hello", "index": 0, "expected": None})
    write(
        "registries_storage_url", FILE, "TestLookasideStorageURL", rows, "expected null: an error"
    )

    rows = [
        {"euid": 0, "expected": "file:///var/lib/containers/sigstore"},
        {"euid": 1000, "expected": "file://$HOME/.local/share/containers/sigstore"},
    ]
    write(
        "registries_builtin_default",
        FILE,
        "TestBuiltinDefaultLookasideStorageDir",
        rows,
        "the lookaside used when registries.d names none: root vs any other user",
    )

    rows = [
        {
            "case": "the common case",
            "root": "",
            "user_dir": False,
            "expected": "/etc/containers/registries.d",
        },
        {
            "case": "root overridden",
            "root": "/root/prefix",
            "user_dir": False,
            "expected": "/root/prefix/etc/containers/registries.d",
        },
        {
            "case": "user registries.d present",
            "root": "",
            "user_dir": True,
            "expected": "$HOME/.config/containers/registries.d",
        },
    ]
    write(
        "registries_dir_path",
        FILE,
        "TestRegistriesDirPath",
        rows,
        "which registries.d a user's tools read (cases with an explicit RegistriesDirPath have no podsec equivalent)",
    )
