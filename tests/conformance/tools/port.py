#!/usr/bin/env python3
"""Port containers/image's test tables into tests/conformance/data/*.json.

    python3 tests/conformance/tools/port.py /path/to/containers-image-checkout

The checkout must be at COMMIT (a ``git archive`` of it is fine). Tables that are plain Go
composite literals are read mechanically (``golit``); tables whose cases are spelled as
code (breakFns, duplicated fields) are transcribed in ``handmade.py`` next to this file.
Each data file records the repository, commit, file and test function it comes from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import golit

REPOSITORY = "containers/image"
COMMIT = "df7e80d2d19872b61f352a8a182ec934dc0c2346"
DATA = Path(__file__).resolve().parent.parent / "data"


def write(name: str, file: str, function: str, rows: list[Any], note: str = "") -> None:
    DATA.mkdir(exist_ok=True)
    doc = {
        "source": {
            "repository": REPOSITORY,
            "commit": COMMIT,
            "file": file,
            "function": function,
        },
        "note": note,
        "rows": rows,
    }
    (DATA / f"{name}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows")


def _errname(value: Any) -> str | None:
    if value is None:
        return None
    return value.name if isinstance(value, golit.Ident) else str(value)


def reference_tables(root: Path) -> None:
    base = "docker/reference/"
    ref = (root / base / "reference_test.go").read_text()
    norm = (root / base / "normalize_test.go").read_text()
    rex = (root / base / "regexp_test.go").read_text()

    rows = [
        {
            "input": c["input"],
            "err": _errname(c.get("err")),
            "repository": c.get("repository", ""),
            "domain": c.get("domain", ""),
            "tag": c.get("tag", ""),
            "digest": c.get("digest", ""),
        }
        for c in golit.table_after(ref, "referenceTestcases := ")
    ]
    write("reference_parse", base + "reference_test.go", "TestReferenceParse", rows)

    rows = [
        {
            "input": c["input"],
            "err": _errname(c.get("err")),
            "domain": c.get("domain", ""),
            "name": c.get("name", ""),
        }
        for c in golit.table_after(ref[ref.index("func TestParseNamed") :], "testcases := ")
    ]
    write("reference_parse_named", base + "reference_test.go", "TestParseNamed", rows)

    rows = []
    fn = norm[norm.index("func TestValidateReferenceName") :]
    rows += [{"input": s, "valid": True} for s in golit.table_after(fn, "validRepoNames := ")]
    rows += [{"input": s, "valid": False} for s in golit.table_after(fn, "invalidRepoNames := ")]
    write("reference_validate_name", base + "normalize_test.go", "TestValidateReferenceName", rows)

    rows = []
    fn = norm[norm.index("func TestValidateRemoteName") :]
    rows += [{"input": s, "valid": True} for s in golit.table_after(fn, "validRepositoryNames := ")]
    rows += [
        {"input": s, "valid": False} for s in golit.table_after(fn, "invalidRepositoryNames := ")
    ]
    write(
        "reference_validate_remote_name", base + "normalize_test.go", "TestValidateRemoteName", rows
    )

    fn = norm[norm.index("func TestParseRepositoryInfo") :]
    rows = golit.table_after(fn, "tcases := ")
    write("reference_repository_info", base + "normalize_test.go", "TestParseRepositoryInfo", rows)

    fn = norm[norm.index("func TestParseAnyReference") :]
    rows = []
    for c in golit.table_after(fn, "tcases := "):
        exp = c.get("Expected")
        row = {"input": c["Reference"], "equivalent": c["Equivalent"]}
        if isinstance(exp, golit.Call):
            row["expected_kind"] = exp.name
        rows.append(row)
    write("reference_parse_any", base + "normalize_test.go", "TestParseAnyReference", rows)

    fn = norm[norm.index("func TestNormalizedSplitHostname") :]
    rows = golit.table_after(fn, "testcases := ")
    write(
        "reference_normalized_split",
        base + "normalize_test.go",
        "TestNormalizedSplitHostname",
        rows,
    )

    fn = norm[norm.index("func TestParseDockerRef") :]
    rows = golit.table_after(fn, "testcases := ")
    write("reference_parse_docker_ref", base + "normalize_test.go", "TestParseDockerRef", rows)

    for func, var, name, regex in (
        ("TestDomainRegexp", "hostcases := ", "regexp_domain", "domain"),
        ("TestFullNameRegexp", "testcases := ", "regexp_full_name", "anchored_name"),
        ("TestReferenceRegexp", "testcases := ", "regexp_reference", "reference"),
        ("TestIdentifierRegexp", "fullCases := ", "regexp_identifier", "identifier"),
    ):
        fn = rex[rex.index(f"func {func}") :]
        rows = [
            {"input": c["input"], "match": c["match"], "subs": c.get("subs") or [], "regex": regex}
            for c in golit.table_after(fn, var)
        ]
        write(name, base + "regexp_test.go", func, rows)


def main() -> None:
    root = Path(sys.argv[1])
    reference_tables(root)
    identity_tables(root)
    import handmade

    handmade.main(root, write)


def _modified(s: str) -> str:
    """modifiedString in policy_reference_match_test.go: bump the first letter."""
    c = s[0]
    return ("a" if c == "z" else chr(ord(c) + 1)) + s[1:]


def identity_tables(root: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "src"))
    from podsec.trust import reference

    def parses(text: str) -> bool:
        try:
            reference.parse_normalized(text)
        except reference.ReferenceError:
            return False
        return True

    file = "signature/policy_reference_match_test.go"
    src = (root / file).read_text()
    consts = golit.string_constants(src)
    exact = golit.table_after(src, "var prmExactMatchTestTable = ", consts)
    repo = golit.table_after(src, "var prmRepositoryMatchTestTable = ", consts)
    mrdoe = golit.table_after(src, "var matchRepoDigestOrExactTestTable = ", consts)
    rows: list[dict[str, Any]] = []

    def add(function: str, rule: dict[str, Any], image: str | None, sig: str, result: bool) -> None:
        rows.append(
            {"function": function, "rule": rule, "image": image, "signature": sig, "result": result}
        )

    both = lambda t: [(t[0], t[1], t[2]), (t[1], t[0], t[2])]  # noqa: E731
    for a, b, res in [x for t in exact for x in both(t)]:
        if parses(a):
            add("TestPRMMatchExactMatchesDockerReference", {"type": "matchExact"}, a, b, res)
    add("TestPRMMatchExactMatchesDockerReference", {"type": "matchExact"}, None, "", False)
    mr = {"type": "matchRepoDigestOrExact"}
    for a, b, res in [x for t in exact if t[2] for x in both(t)] + [
        x for t in repo if not t[2] for x in both(t)
    ]:
        if parses(a):
            add("TestPRMMatchRepoDigestOrExactMatchesDockerReference", mr, a, b, res)
    for a, b, res in mrdoe:
        add("TestPRMMatchRepoDigestOrExactMatchesDockerReference", mr, a, b, res)
    for a, b, res in [x for t in repo for x in both(t)]:
        if parses(a):
            add(
                "TestPRMMatchRepositoryMatchesDockerReference",
                {"type": "matchRepository"},
                a,
                b,
                res,
            )
    add(
        "TestPRMMatchRepositoryMatchesDockerReference", {"type": "matchRepository"}, None, "", False
    )
    for a, b, res in [x for t in exact for x in both(t)]:
        add(
            "TestPRMExactReferenceMatchesDockerReference",
            {"type": "exactReference", "dockerReference": a},
            None,
            b,
            res,
        )
    for a, b, res in [x for t in repo for x in both(t)]:
        add(
            "TestPRMExactRepositoryMatchesDockerReference",
            {"type": "exactRepository", "dockerRepository": a},
            None,
            b,
            res,
        )
    fn = src[src.index("func TestPRMRemapIdentityMatchesDockerReference") :]
    for c in golit.table_after(fn, "for _, c := range ", consts):
        prefix, signed, image, sig, res = c
        rule = {"type": "remapIdentity", "prefix": prefix, "signedPrefix": signed}
        add("TestPRMRemapIdentityMatchesDockerReference", rule, image, sig, res)
    add(
        "TestPRMRemapIdentityMatchesDockerReference",
        {"type": "remapIdentity", "prefix": "docker.io", "signedPrefix": "docker.io"},
        None,
        "",
        False,
    )
    derived = [x for t in exact if t[2] for x in both(t)] + [
        x for t in repo if not t[2] for x in both(t)
    ]
    for (a, b, res), strict in [(d, False) for d in derived] + [
        ((m[0], m[1], m[2]), True) for m in mrdoe
    ]:
        if not parses(a):
            if strict:
                raise SystemExit(f"unexpected invalid image {a}")
            continue
        never = "never-causes-a-rewrite.example"
        add(
            "TestPRMRemapIdentityMatchesDockerReference",
            {"type": "remapIdentity", "prefix": never, "signedPrefix": never},
            a,
            b,
            res,
        )
        parsed = reference.parse_normalized(a)
        modified = str(reference.parse_normalized(_modified(str(parsed))))
        add(
            "TestPRMRemapIdentityMatchesDockerReference",
            {
                "type": "remapIdentity",
                "prefix": _modified(parsed.domain),
                "signedPrefix": parsed.domain,
            },
            modified,
            b,
            res,
        )
    write(
        "identity_match",
        file,
        "(the functions named in each row)",
        rows,
        "rule: the signedIdentity; image: the image's docker reference (null: none); result: does the signature's identity match",
    )

    rows = []
    for a, b, res in [x for t in exact if t[2] for x in both(t)] + [
        x for t in repo if not t[2] for x in both(t)
    ]:
        if parses(a) and parses(b):
            rows.append({"image": a, "signature": b, "result": res})
    rows += [{"image": m[0], "signature": m[1], "result": m[2]} for m in mrdoe]
    write(
        "identity_repo_digest_or_exact_values",
        file,
        "TestMatchRepoDigestOrExactReferenceValues",
        rows,
    )

    fn = src[src.index("func TestPRMRemapIdentityRefMatchesPrefix") :]
    rows = [
        {"ref": c[0], "prefix": c[1], "expected": c[2]}
        for c in golit.table_after(fn, "for _, c := range ", consts)
    ]
    write("identity_remap_prefix_match", file, "TestPRMRemapIdentityRefMatchesPrefix", rows)
    fn = src[src.index("func TestPRMRemapIdentityRemapReferencePrefix") :]
    rows = [
        {"prefix": c[0], "signedPrefix": c[1], "ref": c[2], "expected": c[3] or None}
        for c in golit.table_after(fn, "for _, c := range ", consts)
    ]
    write(
        "identity_remap_rewrite",
        file,
        "TestPRMRemapIdentityRemapReferencePrefix",
        rows,
        "expected null: containers/image fails the rewrite",
    )


if __name__ == "__main__":
    main()
