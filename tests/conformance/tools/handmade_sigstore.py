"""sigstoreSigned parsing cases (signature/policy_config_sigstore_test.go), as data.

Only the *parser* is ported: podsec accepts every requirement containers/image accepts and
refuses the others; evaluating a sigstore signature is a later step (the verifier refuses
until it exists).
"""

from __future__ import annotations

import itertools
from pathlib import Path

from handmade import RDOE, SIGSTORE_TEST, Table, Write, _both, _del, _set, b64, dup, enc

FULCIO = {
    "caPath": "fixtures/fulcio_v1.crt.pem",
    "oidcIssuer": "https://github.com/login/oauth",
    "subjectEmail": "mitr@redhat.com",
}
PKI = {
    "caRootsPath": "fixtures/pki_root_crts.pem",
    "caIntermediatesPath": "fixtures/pki_intermediate_crts.pem",
    "subjectHostname": "myhost.example.com",
}


def _req(**fields: object) -> dict[str, object]:
    return {"type": "sigstoreSigned", **fields, "signedIdentity": RDOE}


def sigstore_tables(root: Path, write: Write) -> None:
    rows = []
    # TestNewPRSigstoreSigned: every key source with every Rekor option
    t = Table("requirement", "TestNewPRSigstoreSigned")
    sources = [
        ("keyPath", {"keyPath": "/foo/bar"}, "optional"),
        ("keyPaths", {"keyPaths": ["/foo/bar", "/baz/bar"]}, "optional"),
        ("keyData", {"keyData": b64("abc")}, "optional"),
        ("keyDatas", {"keyDatas": [b64("abc"), b64("def")]}, "optional"),
        ("pki", {"pki": PKI}, "forbidden"),
        ("fulcio", {"fulcio": FULCIO}, "required"),
    ]
    rekors = [
        ("no Rekor", {}),
        ("rekorPublicKeyPath", {"rekorPublicKeyPath": "/foo/baz"}),
        ("rekorPublicKeyPaths", {"rekorPublicKeyPaths": ["/foo/baz", "/foo/bar"]}),
        ("rekorPublicKeyData", {"rekorPublicKeyData": b64("def")}),
        ("rekorPublicKeyDatas", {"rekorPublicKeyDatas": [b64("def"), b64("abc")]}),
    ]
    for (sname, sfields, need), (rname, rfields) in itertools.product(sources, rekors):
        ok = not ((need == "required" and not rfields) or (need == "forbidden" and rfields))
        t.add(f"{sname} + {rname}", enc(_req(**sfields, **rfields)), ok)
    fulcio2 = dict(FULCIO, subjectEmail="test-user@example.com")
    for case, text in [
        ("none of the key sources", enc({"type": "sigstoreSigned", "signedIdentity": RDOE})),
        ("keyPath and keyData", enc(_req(keyPath="/foo/bar", keyData=b64("abc")))),
        (
            "keyPath and fulcio",
            enc(_req(keyPath="/foo/bar", fulcio=FULCIO, rekorPublicKeyPath="/foo/baz")),
        ),
        (
            "keyData and fulcio",
            enc(_req(keyData=b64("abc"), fulcio=FULCIO, rekorPublicKeyPath="/foo/baz")),
        ),
        ("keyPath and pki", enc(_req(keyPath="/foo/bar", pki=PKI))),
        ("keyData and pki", enc(_req(keyData=b64("abc"), pki=PKI))),
        ("fulcio and pki", enc(_req(fulcio=FULCIO, rekorPublicKeyPath="/foo/baz", pki=PKI))),
        ("duplicate keyPath", dup(_req(keyPath="/foo/bar"), "keyPath")),
        ("empty keyPaths", enc(_req(keyPaths=[]))),
        ("duplicate keyPaths", dup(_req(keyPaths=["/foo/bar", "/baz/bar"]), "keyPaths")),
        ("keyPath and keyPaths", enc(_req(keyPath="foobar", keyPaths=["foobar"]))),
        ("duplicate keyData", dup(_req(keyData=b64("abc")), "keyData")),
        ("empty keyDatas", enc(_req(keyDatas=[]))),
        ("duplicate keyDatas", dup(_req(keyDatas=[b64("abc"), b64("def")]), "keyDatas")),
        ("keyData and keyDatas", enc(_req(keyData=b64("bar"), keyDatas=[b64("foo")]))),
        ("duplicate fulcio", dup(_req(fulcio=fulcio2, rekorPublicKeyPath="/foo/baz"), "fulcio")),
        ("fulcio without Rekor", enc(_req(fulcio=FULCIO))),
        (
            "rekorKeyPath and rekorKeyData",
            enc(
                _req(
                    keyPath="/foo/bar", rekorPublicKeyPath="/foo/baz", rekorPublicKeyData=b64("def")
                )
            ),
        ),
        (
            "duplicate rekorKeyPath",
            dup(_req(keyPath="/foo/bar", rekorPublicKeyPath="/foo/baz"), "rekorPublicKeyPath"),
        ),
        (
            "rekorKeyPath and rekorKeyPaths",
            enc(
                _req(
                    keyPath="/foo/bar",
                    rekorPublicKeyPath="/foo/baz",
                    rekorPublicKeyPaths=["/foo/baz", "/foo/bar"],
                )
            ),
        ),
        ("empty rekorKeyPaths", enc(_req(keyPath="/foo/bar", rekorPublicKeyPaths=[]))),
        (
            "duplicate rekorKeyPaths",
            dup(_req(keyPath="/foo/bar", rekorPublicKeyPaths=["/foo/baz"]), "rekorPublicKeyPaths"),
        ),
        (
            "duplicate rekorKeyData",
            dup(_req(keyPath="/foo/bar", rekorPublicKeyData=b64("def")), "rekorPublicKeyData"),
        ),
        (
            "rekorKeyData and rekorKeyDatas",
            enc(
                _req(
                    keyPath="/foo/bar",
                    rekorPublicKeyData=b64("def"),
                    rekorPublicKeyDatas=[b64("def"), b64("def")],
                )
            ),
        ),
        ("empty rekorKeyDatas", enc(_req(keyPath="/foo/bar", rekorPublicKeyDatas=[]))),
        (
            "duplicate rekorKeyDatas",
            dup(_req(keyPath="/foo/bar", rekorPublicKeyDatas=[b64("def")]), "rekorPublicKeyDatas"),
        ),
        ("pki with rekorPublicKeyPath", enc(_req(pki=PKI, rekorPublicKeyPath="/foo/baz"))),
        (
            "no signedIdentity",
            enc({"type": "sigstoreSigned", "keyPath": "/foo/bar", "signedIdentity": None}),
        ),
        ("duplicate signedIdentity", dup(_req(keyPath="/foo/bar"), "signedIdentity")),
    ]:
        t.add(case, text, False)
    rows += t.rows

    # TestPRSigstoreSignedUnmarshalJSON
    t = Table("requirement", "TestPRSigstoreSignedUnmarshalJSON")
    pki_b = {
        "caRootsPath": "/foo/bar",
        "caIntermediatesPath": "/foo/baz",
        "subjectHostname": "example.com",
    }
    fulcio_b = {
        "caPath": "/foo/baz",
        "oidcIssuer": "https://example.com",
        "subjectEmail": "test@example.com",
    }
    t.unmarshaller(
        _req(keyData=b64("abc")),
        breaks=[
            ('the "type" field is missing', _del("type")),
            ('wrong "type" field: 1', _set(type=1)),
            ('wrong "type" field: invalid', _set(type="this is invalid")),
            ("extra top-level sub-object", _set(unexpected=1)),
            ("all key sources missing", _del("keyData")),
            ("keyPath and keyData", _set(keyPath="/foo/bar")),
            ("keyPaths and keyData", _set(keyPaths=["/foo/bar", "/foo/baz"])),
            ("keyData and keyDatas", _set(keyDatas=[b64("abc"), b64("def")])),
            ("keyData and fulcio", _set(fulcio=fulcio_b)),
            ("keyData and pki", _set(pki=pki_b)),
            ('invalid "keyPath"', _both(_del("keyData"), _set(keyPath=1))),
            ('invalid "keyPaths": 1', _both(_del("keyData"), _set(keyPaths=1))),
            ('invalid "keyPaths": {}', _both(_del("keyData"), _set(keyPaths={}))),
            ('invalid "keyPaths": []', _both(_del("keyData"), _set(keyPaths=[]))),
            ('invalid "keyData": 1', _set(keyData=1)),
            ('invalid "keyData": not base64', _set(keyData="this is invalid base64")),
            ('invalid "keyDatas": 1', _both(_del("keyData"), _set(keyDatas=1))),
            ('invalid "keyDatas": {}', _both(_del("keyData"), _set(keyDatas={}))),
            ('invalid "keyDatas": []', _both(_del("keyData"), _set(keyDatas=[]))),
            ('invalid "fulcio": 1', _both(_del("keyData"), _set(fulcio=1))),
            ('invalid "fulcio": {}', _both(_del("keyData"), _set(fulcio={}))),
            ('"fulcio" explicit nil', _both(_del("keyData"), _set(fulcio=None))),
            ('invalid "pki": 1', _both(_del("keyData"), _set(pki=1))),
            ('invalid "pki": {}', _both(_del("keyData"), _set(pki={}))),
            ('"pki" explicit nil', _both(_del("keyData"), _set(pki=None))),
            (
                "rekorKeyPath and rekorKeyData",
                _set(rekorPublicKeyPath="/foo/baz", rekorPublicKeyData=""),
            ),
            ('invalid "rekorPublicKeyPath"', _set(rekorPublicKeyPath=1)),
            (
                "rekorKeyPath and rekorKeyPaths",
                _set(rekorPublicKeyPath="/foo/baz", rekorPublicKeyPaths=["/baz/a", "/baz/b"]),
            ),
            ('invalid "rekorPublicKeyPaths": 1', _set(rekorPublicKeyPaths=1)),
            ('invalid "rekorPublicKeyPaths": {}', _set(rekorPublicKeyPaths={})),
            ('invalid "rekorPublicKeyPaths": []', _set(rekorPublicKeyPaths=[])),
            ('invalid "rekorPublicKeyData": 1', _set(rekorPublicKeyData=1)),
            (
                'invalid "rekorPublicKeyData": not base64',
                _set(rekorPublicKeyData="this is invalid base64"),
            ),
            (
                "rekorPublicKeyData and rekorPublicKeyDatas",
                _set(rekorPublicKeyData=b64("a"), rekorPublicKeyDatas=[b64("a"), b64("b")]),
            ),
            ('invalid "rekorPublicKeyDatas": 1', _set(rekorPublicKeyDatas=1)),
            ('invalid "rekorPublicKeyDatas": {}', _set(rekorPublicKeyDatas={})),
            ('invalid "rekorPublicKeyDatas": []', _set(rekorPublicKeyDatas=[])),
            ('invalid "signedIdentity"', _set(signedIdentity="this is invalid")),
            ('"signedIdentity" explicit nil', _set(signedIdentity=None)),
        ],
        duplicates=["type", "keyData", "signedIdentity"],
        allowed=[
            ("delete the signedIdentity field", _del("signedIdentity")),
            ("signedIdentity set to the default explicitly", _set(signedIdentity=RDOE)),
        ],
    )
    for valid, dups in [
        (_req(keyPath="/foo/bar"), ["type", "keyPath", "signedIdentity"]),
        (_req(keyPaths=["/foo/bar", "/foo/baz"]), ["type", "keyPaths", "signedIdentity"]),
        (_req(keyDatas=[b64("abc"), b64("def")]), ["type", "keyDatas", "signedIdentity"]),
        (
            _req(fulcio=FULCIO, rekorPublicKeyPath="/foo/rekor"),
            ["type", "fulcio", "rekorPublicKeyPath", "signedIdentity"],
        ),
        (
            _req(keyPath="/foo/bar", rekorPublicKeyPaths=["/baz/a", "/baz/b"]),
            ["type", "keyPath", "rekorPublicKeyPaths", "signedIdentity"],
        ),
        (
            _req(keyPath="/foo/bar", rekorPublicKeyData=b64("foo")),
            ["type", "keyPath", "rekorPublicKeyData", "signedIdentity"],
        ),
        (
            _req(keyPath="/foo/bar", rekorPublicKeyDatas=[b64("foo"), b64("bar")]),
            ["type", "keyPath", "rekorPublicKeyDatas", "signedIdentity"],
        ),
        (
            _req(
                pki={
                    "caRootsPath": "fixtures/pki_root_crts.pem",
                    "subjectEmail": "test-user@example.com",
                }
            ),
            ["type", "pki", "signedIdentity"],
        ),
    ]:
        t2 = Table("requirement", "TestPRSigstoreSignedUnmarshalJSON")
        t2.unmarshaller(valid, duplicates=dups)
        t.rows += [r for r in t2.rows if r["case"] not in ("invalid JSON &", "not an object: 1")]
    rows += t.rows

    # TestNewPRSigstoreSignedFulcio + TestPRSigstoreSignedFulcioUnmarshalJSON
    t = Table("fulcio", "TestNewPRSigstoreSignedFulcio")
    ca_data = b64("abc")
    for case, obj, ok in [
        ("caPath", FULCIO, True),
        (
            "caData",
            {
                "caData": ca_data,
                "oidcIssuer": FULCIO["oidcIssuer"],
                "subjectEmail": FULCIO["subjectEmail"],
            },
            True,
        ),
        (
            "neither caPath nor caData",
            {"oidcIssuer": FULCIO["oidcIssuer"], "subjectEmail": FULCIO["subjectEmail"]},
            False,
        ),
        ("both caPath and caData", dict(FULCIO, caData=ca_data), False),
        (
            "missing oidcIssuer",
            {"caPath": FULCIO["caPath"], "subjectEmail": FULCIO["subjectEmail"]},
            False,
        ),
        (
            "missing subjectEmail",
            {"caPath": FULCIO["caPath"], "oidcIssuer": FULCIO["oidcIssuer"]},
            False,
        ),
    ]:
        t.add(case, enc(obj), ok)
    for field_name in ("caPath", "oidcIssuer", "subjectEmail"):
        t.add(f"duplicate {field_name}", dup(FULCIO, field_name), False)
    rows += t.rows
    t = Table("fulcio", "TestPRSigstoreSignedFulcioUnmarshalJSON")
    t.unmarshaller(
        FULCIO,
        breaks=[
            ("extra top-level sub-object", _set(unexpected=1)),
            ("both caPath and caData missing", _del("caPath")),
            ("both caPath and caData present", _set(caData="")),
            ('invalid "caPath"', _set(caPath=1)),
            ('invalid "oidcIssuer"', _set(oidcIssuer=1)),
            ('"oidcIssuer" missing', _del("oidcIssuer")),
            ('invalid "subjectEmail"', _set(subjectEmail=1)),
            ('"subjectEmail" missing', _del("subjectEmail")),
        ],
        duplicates=["caPath", "oidcIssuer", "subjectEmail"],
    )
    with_data = {
        "caData": ca_data,
        "oidcIssuer": FULCIO["oidcIssuer"],
        "subjectEmail": FULCIO["subjectEmail"],
    }
    t2 = Table("fulcio", "TestPRSigstoreSignedFulcioUnmarshalJSON")
    t2.unmarshaller(
        with_data,
        breaks=[
            ('invalid "caData": 1', _set(caData=1)),
            ('invalid "caData": not base64', _set(caData="this is invalid base64")),
        ],
        duplicates=["caData", "oidcIssuer", "subjectEmail"],
    )
    t.rows += [dict(r, case=f"caData variant: {r['case']}") for r in t2.rows]
    rows += t.rows

    # TestNewPRSigstoreSignedPKI + TestPRSigstoreSignedPKIUnmarshalJSON
    t = Table("pki", "TestNewPRSigstoreSignedPKI")
    roots, mids = "fixtures/pki_root_crts.pem", "fixtures/pki_intermediate_crts.pem"
    for case, obj, ok in [
        (
            "roots path + hostname",
            {"caRootsPath": roots, "subjectHostname": "myhost.example.com"},
            True,
        ),
        ("roots data + email", {"caRootsData": b64("abc"), "subjectEmail": "a@example.com"}, True),
        (
            "roots + intermediates paths",
            {"caRootsPath": roots, "caIntermediatesPath": mids, "subjectEmail": "a@example.com"},
            True,
        ),
        (
            "intermediates data",
            {
                "caRootsPath": roots,
                "caIntermediatesData": b64("def"),
                "subjectEmail": "a@example.com",
            },
            True,
        ),
        ("neither caRootsPath nor caRootsData", {"subjectEmail": "a@example.com"}, False),
        (
            "both caRootsPath and caRootsData",
            {"caRootsPath": roots, "caRootsData": b64("abc"), "subjectEmail": "a@example.com"},
            False,
        ),
        (
            "both intermediates path and data",
            {
                "caRootsPath": roots,
                "caIntermediatesPath": mids,
                "caIntermediatesData": b64("def"),
                "subjectEmail": "a@example.com",
            },
            False,
        ),
        ("neither subjectEmail nor subjectHostname", {"caRootsPath": roots}, False),
    ]:
        t.add(case, enc(obj), ok)
    rows += t.rows
    t = Table("pki", "TestPRSigstoreSignedPKIUnmarshalJSON")
    valid_pki = dict(PKI, subjectEmail="qiwan@redhat.com")
    t.unmarshaller(
        valid_pki,
        breaks=[
            ("extra top-level sub-object", _set(unexpected=1)),
            ("both caRootsPath and caRootsData missing", _del("caRootsPath")),
            ("both caRootsPath and caRootsData present", _set(caRootsData="")),
            ('invalid "caRootsPath"', _set(caRootsPath=1)),
            ("both intermediates path and data present", _set(caIntermediatesData="")),
            ('invalid "caIntermediatesPath"', _set(caIntermediatesPath=1)),
            ('invalid "subjectHostname"', _set(subjectHostname=1)),
            ('invalid "subjectEmail"', _set(subjectEmail=1)),
            (
                "both subjectHostname and subjectEmail missing",
                _del("subjectHostname", "subjectEmail"),
            ),
        ],
        duplicates=["caRootsPath", "caIntermediatesPath", "subjectHostname", "subjectEmail"],
    )
    with_data = {
        "caRootsData": b64("abc"),
        "caIntermediatesData": b64("def"),
        "subjectHostname": "myhost.example.com",
        "subjectEmail": "qiwan@redhat.com",
    }
    t2 = Table("pki", "TestPRSigstoreSignedPKIUnmarshalJSON")
    t2.unmarshaller(
        with_data,
        breaks=[
            ('invalid "caRootsData": 1', _set(caRootsData=1)),
            ('invalid "caRootsData": not base64', _set(caRootsData="this is invalid base64")),
            ('invalid "caIntermediatesData": 1', _set(caIntermediatesData=1)),
            (
                'invalid "caIntermediatesData": not base64',
                _set(caIntermediatesData="this is invalid base64"),
            ),
        ],
        duplicates=["caRootsData", "caIntermediatesData", "subjectHostname", "subjectEmail"],
    )
    t.rows += [dict(r, case=f"data variant: {r['case']}") for r in t2.rows]
    rows += t.rows
    write(
        "policy_parse_sigstore",
        SIGSTORE_TEST,
        "(the functions named in each row)",
        rows,
        "sigstoreSigned requirements: parsed exactly as containers/image; podsec refuses them at evaluation until its sigstore verifier exists",
    )
