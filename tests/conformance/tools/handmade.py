"""containers/image test cases that are written as code, transcribed as data.

``policyJSONUmarshallerTests`` (signature/policy_config_test.go and
policy_config_sigstore_test.go) builds a valid object, then breaks it with ``breakFns``,
``invalidObjects`` and duplicated fields; each such case becomes one row here, with the
same JSON containers/image feeds its parser and its expected verdict (valid or not).
A row names the level the object is parsed at; the runner wraps it in a policy.json
(``{"default": [ROW]}`` for a requirement, a signedBy's ``signedIdentity`` for an identity,
``transports.docker`` for a scope map), which is how such an object reaches the parser.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Write = Callable[..., None]
Obj = dict[str, Any]

POLICY_TEST = "signature/policy_config_test.go"
SIGSTORE_TEST = "signature/policy_config_sigstore_test.go"


def b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def enc(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def dup(value: Obj, field: str) -> str:
    """addExtraJSONMember: the encoded object with ``field`` repeated at its end."""
    text = enc(value)
    return text[:-1] + f',"{field}":' + enc(value[field]) + "}"


class Table:
    def __init__(self, level: str, function: str):
        self.level = level
        self.function = function
        self.rows: list[Obj] = []

    def add(self, case: str, text: str, valid: bool, level: str | None = None) -> None:
        self.rows.append(
            {
                "function": self.function,
                "level": level or self.level,
                "case": case,
                "json": text,
                "valid": valid,
            }
        )

    def unmarshaller(
        self,
        valid: Obj,
        *,
        breaks: list[tuple[str, Callable[[Obj], None]]] = (),  # type: ignore[assignment]
        invalid: list[tuple[str, Any]] = (),  # type: ignore[assignment]
        duplicates: list[str] = (),  # type: ignore[assignment]
        allowed: list[tuple[str, Callable[[Obj], None]]] = (),  # type: ignore[assignment]
    ) -> None:
        """The rows of one ``policyJSONUmarshallerTests.run`` (plus its allowed edits)."""
        self.add("invalid JSON &", "&", False)
        self.add("not an object: 1", "1", False)
        self.add("valid object", enc(valid), True)
        for case, obj in invalid:
            self.add(f"invalidObjects: {case}", enc(obj), False)
        for case, fn in breaks:
            obj = copy.deepcopy(valid)
            fn(obj)
            self.add(f"breakFns: {case}", enc(obj), False)
        for field in duplicates:
            self.add(f"duplicate {field}", dup(valid, field), False)
        for case, fn in allowed:
            obj = copy.deepcopy(valid)
            fn(obj)
            self.add(f"allowed: {case}", enc(obj), True)


def _set(**kv: Any) -> Callable[[Obj], None]:
    def fn(v: Obj) -> None:
        v.update(kv)

    return fn


def _del(*keys: str) -> Callable[[Obj], None]:
    def fn(v: Obj) -> None:
        for k in keys:
            v.pop(k, None)

    return fn


def _both(*fns: Callable[[Obj], None]) -> Callable[[Obj], None]:
    def fn(v: Obj) -> None:
        for f in fns:
            f(v)

    return fn


RDOE = {"type": "matchRepoDigestOrExact"}


def signed_by_data(key_type: str, data: str, ident: Obj) -> Obj:
    return {"type": "signedBy", "keyType": key_type, "keyData": b64(data), "signedIdentity": ident}


def policy_tables(write: Write) -> None:
    # TestPolicyUnmarshalJSON
    t = Table("policy", "TestPolicyUnmarshalJSON")
    valid_policy = {
        "default": [signed_by_data("GPGKeys", "abc", RDOE)],
        "transports": {
            "docker": {
                "docker.io/library/busybox": [signed_by_data("GPGKeys", "def", RDOE)],
                "registry.access.redhat.com": [
                    signed_by_data("signedByGPGKeys", "RH", {"type": "matchRepository"})
                ],
            },
            "atomic": {
                "registry.access.redhat.com/rhel7": [
                    signed_by_data("signedByGPGKeys", "RHatomic", {"type": "matchRepository"})
                ]
            },
            "unknown": {
                "registry.access.redhat.com/rhel7": [
                    signed_by_data("signedByGPGKeys", "RHatomic", {"type": "matchRepository"})
                ]
            },
        },
    }
    t.unmarshaller(
        valid_policy,
        breaks=[
            ('the "default" field is missing', _del("default")),
            ("extra top-level sub-object", _set(unexpected=1)),
            ('"default" not an array: 1', _set(default=1)),
            ('"default" not an array: {}', _set(default={})),
            ('"transports" not an object: 1', _set(transports=1)),
            ('"transports" not an object: []', _set(transports=[])),
            ('"default" is an invalid PolicyRequirements', _set(default=[])),
        ],
        duplicates=["default", "transports"],
        allowed=[
            ("delete the map of transport-specific scopes", _del("transports")),
            ("an empty map of transport-specific scopes", _set(transports={})),
        ],
    )
    rows = t.rows

    # TestPolicyTransportScopesWithTransportUnmarshalJSON (docker transport)
    t = Table("docker_scopes", "TestPolicyTransportScopesWithTransportUnmarshalJSON")
    valid_pts = {
        "docker.io/library/busybox": [signed_by_data("GPGKeys", "def", RDOE)],
        "registry.access.redhat.com": [
            signed_by_data("signedByGPGKeys", "RH", {"type": "matchRepository"})
        ],
        "": [signed_by_data("GPGKeys", "global", RDOE)],
    }
    t.add("invalid JSON &", "&", False)
    t.add("not an object: 1", "1", False)
    t.add("valid object", enc(valid_pts), True)
    for case, fn in [
        ("a scope is not an array: busybox = 1", _set(**{"docker.io/library/busybox": 1})),
        ("a scope is not an array: busybox = {}", _set(**{"docker.io/library/busybox": {}})),
        ('a scope is not an array: "" = 1', _set(**{"": 1})),
        ('a scope is not an array: "" = {}', _set(**{"": {}})),
        (
            "a scope is an invalid PolicyRequirements: busybox",
            _set(**{"docker.io/library/busybox": []}),
        ),
        ('a scope is an invalid PolicyRequirements: ""', _set(**{"": []})),
    ]:
        obj = copy.deepcopy(valid_pts)
        fn(obj)
        t.add(f"breakFns: {case}", enc(obj), False)
    for field in ("docker.io/library/busybox", ""):
        t.add(f"duplicate {field!r}", dup(valid_pts, field), False)
    t.add(
        "docker scopes are rejected by the dir transport as relative paths",
        enc(valid_pts),
        False,
        level="dir_scopes",
    )
    obj = copy.deepcopy(valid_pts)
    del obj[""]
    t.add('allowed: the "" scope is missing', enc(obj), True)
    t.add("allowed: the policy is completely empty", "{}", True)
    rows += t.rows

    # TestPolicyRequirementsUnmarshalJSON
    t = Table("requirements", "TestPolicyRequirementsUnmarshalJSON")
    t.unmarshaller(
        [  # type: ignore[arg-type]
            signed_by_data("GPGKeys", "def", RDOE),
            signed_by_data("signedByGPGKeys", "RH", {"type": "matchRepository"}),
        ]
    )
    t.rows = [r for r in t.rows if not r["case"].startswith("duplicate")]
    for case, value in [
        ("no requirements", []),
        ("a member is not an object", [1]),
        ("a member has an invalid type", [{"type": "this is invalid", "keyType": ""}]),
        (
            "a member has a valid type but invalid contents",
            [{"type": "signedBy", "keyType": "this is invalid"}],
        ),
    ]:
        t.add(case, enc(value), False)
    rows += t.rows

    # TestNewPolicyRequirementFromJSON
    t = Table("requirement", "TestNewPolicyRequirementFromJSON")
    t.add("sample success", enc({"type": "insecureAcceptAnything"}), True)
    for case, value in [
        ("not an object", 1),
        ("missing type", {"type": ""}),
        ("invalid type", {"type": "this is invalid"}),
        ("valid type but invalid contents", {"type": "signedBy", "keyType": "this is invalid"}),
    ]:
        t.add(case, enc(value), False)
    rows += t.rows

    for kind, function in (
        ("insecureAcceptAnything", "TestPRInsecureAcceptAnythingUnmarshalJSON"),
        ("reject", "TestPRRejectUnmarshalJSON"),
    ):
        t = Table("requirement", function)
        t.unmarshaller(
            {"type": kind},
            invalid=[
                ('missing "type" field', {}),
                ('wrong "type" field: 1', {"type": 1}),
                ('wrong "type" field: invalid', {"type": "this is invalid"}),
                ("extra fields", {"type": kind, "unknown": "foo"}),
            ],
            duplicates=["type"],
        )
        rows += t.rows

    # TestNewPRSignedBy (constructor cases, as the JSON that reaches it)
    t = Table("requirement", "TestNewPRSignedBy")
    path, paths, data = "/foo/bar", ["/path/1", "/path/2"], b64("abc")
    for case, obj, ok in [
        ("keyPath", {"keyType": "GPGKeys", "keyPath": path}, True),
        ("keyPaths", {"keyType": "GPGKeys", "keyPaths": paths}, True),
        ("keyData", {"keyType": "GPGKeys", "keyData": data}, True),
        ('invalid keyType ""', {"keyType": "", "keyPath": path}, False),
        ("invalid keyType", {"keyType": "this is invalid", "keyPath": path}, False),
        (
            "path+paths+data",
            {"keyType": "GPGKeys", "keyPath": path, "keyPaths": paths, "keyData": data},
            False,
        ),
        ("path+paths", {"keyType": "GPGKeys", "keyPath": path, "keyPaths": paths}, False),
        ("path+data", {"keyType": "GPGKeys", "keyPath": path, "keyData": data}, False),
        ("paths+data", {"keyType": "GPGKeys", "keyPaths": paths, "keyData": data}, False),
        ("none", {"keyType": "GPGKeys"}, False),
    ]:
        t.add(case, enc({"type": "signedBy", **obj, "signedIdentity": RDOE}), ok)
    for key_type in ("GPGKeys", "signedByGPGKeys", "X509Certificates", "signedByX509CAs"):
        # TestSBKeyTypeIsValid / TestSBKeyTypeUnmarshalJSON: valid at parse time
        t.add(
            f"keyType {key_type} (TestSBKeyTypeUnmarshalJSON)",
            enc({"type": "signedBy", "keyType": key_type, "keyPath": path}),
            True,
        )
    rows += t.rows

    # TestPRSignedByUnmarshalJSON
    t = Table("requirement", "TestPRSignedByUnmarshalJSON")
    valid = {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyData": b64("abc"),
        "signedIdentity": RDOE,
    }
    t.unmarshaller(
        valid,
        breaks=[
            ('the "type" field is missing', _del("type")),
            ('wrong "type" field: 1', _set(type=1)),
            ('wrong "type" field: invalid', _set(type="this is invalid")),
            ("extra top-level sub-object", _set(unexpected=1)),
            ('the "keyType" field is missing', _del("keyType")),
            ('invalid "keyType" field', _set(keyType="this is invalid")),
            ("all of keyPath, keyPaths and keyData are missing", _del("keyData")),
            ("all three present", _set(keyPath="/foo/bar", keyPaths=["/1", "/2"])),
            (
                "keyPath+keyPaths",
                _both(_set(keyPath="/foo/bar", keyPaths=["/1", "/2"]), _del("keyData")),
            ),
            ("keyPath+keyData", _set(keyPath="/foo/bar")),
            ("keyPaths+keyData", _set(keyPaths=["/1", "/2"])),
            ('invalid "keyPath" field', _both(_del("keyData"), _set(keyPath=1))),
            ('invalid "keyPaths" field: 1', _both(_del("keyData"), _set(keyPaths=1))),
            ('invalid "keyPaths" field: [1]', _both(_del("keyData"), _set(keyPaths=[1]))),
            ('invalid "keyData" field: 1', _set(keyData=1)),
            ('invalid "keyData" field: not base64', _set(keyData="this is invalid base64")),
            ('invalid "signedIdentity" field', _set(signedIdentity="this is invalid")),
            ('"signedIdentity" an explicit nil', _set(signedIdentity=None)),
        ],
        duplicates=["type", "keyType", "keyData", "signedIdentity"],
        allowed=[("delete the signedIdentity field", _del("signedIdentity"))],
    )
    for field_name, value in (("keyPath", "/foo/bar"), ("keyPaths", ["/1", "/2"])):
        v2 = {"type": "signedBy", "keyType": "GPGKeys", field_name: value, "signedIdentity": RDOE}
        t2 = Table("requirement", "TestPRSignedByUnmarshalJSON")
        t2.unmarshaller(v2, duplicates=["type", "keyType", field_name, "signedIdentity"])
        t.rows += [dict(r, case=f"{field_name} variant: {r['case']}") for r in t2.rows]
    rows += t.rows

    # TestPRSignedBaseLayerUnmarshalJSON
    t = Table("requirement", "TestPRSignedBaseLayerUnmarshalJSON")
    t.unmarshaller(
        {
            "type": "signedBaseLayer",
            "baseLayerIdentity": {
                "type": "exactReference",
                "dockerReference": "registry.access.redhat.com/rhel7/rhel:7.2.3",
            },
        },
        breaks=[
            ('the "type" field is missing', _del("type")),
            ('wrong "type" field: 1', _set(type=1)),
            ('wrong "type" field: invalid', _set(type="this is invalid")),
            ("extra top-level sub-object", _set(unexpected=1)),
            ('the "baseLayerIdentity" field is missing', _del("baseLayerIdentity")),
            ('invalid "baseLayerIdentity" field', _set(baseLayerIdentity="this is invalid")),
            ('"baseLayerIdentity" an explicit nil', _set(baseLayerIdentity=None)),
        ],
        duplicates=["type", "baseLayerIdentity"],
    )
    rows += t.rows

    # TestNewPolicyReferenceMatchFromJSON
    t = Table("identity", "TestNewPolicyReferenceMatchFromJSON")
    t.add("sample success", enc(RDOE), True)
    for case, value in [
        ("not an object", 1),
        ("missing type", {"type": ""}),
        ("invalid type", {"type": "this is invalid"}),
        ("valid type but invalid contents", {"type": "exactReference", "dockerReference": ""}),
    ]:
        t.add(case, enc(value), False)
    rows += t.rows

    for kind, function in (
        ("matchExact", "TestPRMMatchExactUnmarshalJSON"),
        ("matchRepoDigestOrExact", "TestPRMMatchRepoDigestOrExactUnmarshalJSON"),
        ("matchRepository", "TestPRMMatchRepositoryUnmarshalJSON"),
    ):
        t = Table("identity", function)
        t.unmarshaller(
            {"type": kind},
            invalid=[
                ('missing "type" field', {}),
                ('wrong "type" field: 1', {"type": 1}),
                ('wrong "type" field: invalid', {"type": "this is invalid"}),
                ("extra fields", {"type": kind, "unknown": "foo"}),
            ],
            duplicates=["type"],
        )
        rows += t.rows

    t = Table("identity", "TestNewPRMExactReference")
    for value, ok in [
        ("library/busybox:latest", True),
        ("", False),
        ("INVALIDUPPERCASE:latest", False),
        ("library/busybox", False),
    ]:
        t.add(
            f"dockerReference {value!r}",
            enc({"type": "exactReference", "dockerReference": value}),
            ok,
        )
    rows += t.rows

    for kind, field_name, function in (
        ("exactReference", "dockerReference", "TestPRMExactReferenceUnmarshalJSON"),
        ("exactRepository", "dockerRepository", "TestPRMExactRepositoryUnmarshalJSON"),
    ):
        t = Table("identity", function)
        t.unmarshaller(
            {"type": kind, field_name: "library/busybox:latest"},
            breaks=[
                ('the "type" field is missing', _del("type")),
                ('wrong "type" field: 1', _set(type=1)),
                ('wrong "type" field: invalid', _set(type="this is invalid")),
                ("extra top-level sub-object", _set(unexpected=1)),
                (f'the "{field_name}" field is missing', _del(field_name)),
                (f'invalid "{field_name}" field', _set(**{field_name: 1})),
            ],
            duplicates=["type", field_name],
        )
        rows += t.rows

    t = Table("identity", "TestNewPRMExactRepository")
    for value, ok in [("library/busybox:latest", True), ("", False), ("INVALIDUPPERCASE", False)]:
        t.add(
            f"dockerRepository {value!r}",
            enc({"type": "exactRepository", "dockerRepository": value}),
            ok,
        )
    rows += t.rows

    t = Table("identity", "TestValidateIdentityRemappingPrefix")
    good = [
        "localhost",
        "example.com",
        "example.com:80",
        "example.com/repo",
        "example.com/ns1/ns2/ns3/repo.with.dots-dashes_underscores",
        "example.com:80/ns1/ns2/ns3/repo.with.dots-dashes_underscores",
        "shortname",
        "ns/shortname",
    ]
    bad = [
        "",
        "repo_with_underscores",
        "example.com/",
        "example.com/UPPERCASEISINVALID",
        "example.com/repo/",
        "example.com/repo:tag",
        "example.com/repo@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "example.com/repo:tag@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ]
    for value in good + bad:
        for which in ("prefix", "signedPrefix"):
            ident = {
                "type": "remapIdentity",
                "prefix": "example.com",
                "signedPrefix": "example.com",
            }
            ident[which] = value
            t.add(f"{which} {value!r}", enc(ident), value in good)
    rows += t.rows

    t = Table("identity", "TestNewPRMRemapIdentity")
    for prefix, signed, ok in [
        ("example.com/docker-library", "docker.io/library", True),
        ("", "docker.io/library", False),
        ("example.com/UPPERCASEISINVALID", "docker.io/library", False),
        ("example.com/docker-library", "", False),
        ("example.com/docker-library", "example.com/UPPERCASEISINVALID", False),
    ]:
        t.add(
            f"{prefix!r} → {signed!r}",
            enc({"type": "remapIdentity", "prefix": prefix, "signedPrefix": signed}),
            ok,
        )
    rows += t.rows

    t = Table("identity", "TestPRMRemapIdentityUnmarshalJSON")
    t.unmarshaller(
        {
            "type": "remapIdentity",
            "prefix": "example.com/docker-library",
            "signedPrefix": "docker.io/library",
        },
        breaks=[
            ('the "type" field is missing', _del("type")),
            ('wrong "type" field: 1', _set(type=1)),
            ('wrong "type" field: invalid', _set(type="this is invalid")),
            ("extra top-level sub-object", _set(unexpected=1)),
            ('the "prefix" field is missing', _del("prefix")),
            ('invalid "prefix" field: 1', _set(prefix=1)),
            ('invalid "prefix" field: invalid', _set(prefix="this is invalid")),
            ('the "signedPrefix" field is missing', _del("signedPrefix")),
            ('invalid "signedPrefix" field: 1', _set(signedPrefix=1)),
            ('invalid "signedPrefix" field: invalid', _set(signedPrefix="this is invalid")),
        ],
        duplicates=["type", "prefix", "signedPrefix"],
    )
    rows += t.rows
    write(
        "policy_parse",
        POLICY_TEST,
        "(the functions named in each row)",
        rows,
        "each row: the JSON containers/image's test feeds its parser at `level`, and whether it is accepted",
    )


def main(root: Path, write: Write) -> None:
    policy_tables(write)
    from handmade_sigstore import sigstore_tables

    sigstore_tables(root, write)
    from handmade_sigstore_eval import sigstore_eval_tables

    sigstore_eval_tables(root, write)
    import handmade_signature as hs

    hs.payload_tables(write)
    hs.mechanism_tables(write)
    hs.signedby_tables(write)
    hs.manifest_tables(write)
    hs.scope_tables(write)
    hs.transport_tables(write)
    import handmade_registries

    handmade_registries.registries_tables(write)
