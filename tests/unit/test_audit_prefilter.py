"""The audit log's byte prefilter never leaves out an event the full parse would report
(issue 17): every line :func:`audit_events.extract` reports is a candidate of
:func:`audit_events.candidate_needles`, whatever its JSON looks like — the code's text inside
a string, whitespace around the colon, nested objects and duplicate keys, escaped letters in
the key, revoked users' names escaped or in UTF-8 — and a random mix of all of those."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from podsec.host import logfollow, logscan
from podsec.monitor import audit_events

CODE_SETS = {
    "seed": audit_events.SEED_CODES,
    "forbidden": audit_events.FORBIDDEN_CODES,
    "mixed": audit_events.parse_codes("403,418,500-503"),
}


def reported(lines: list[str], codes: frozenset[int], revoked: frozenset[str]) -> list[str]:
    """What the full parse reports: every line, parsed."""
    out = []
    for line in lines:
        try:
            record = audit_events.extract(line, revoked, codes)
        except ValueError:
            continue
        if record is not None:
            out.append(record.audit_id)
    return out


def scanned(lines: list[str], codes: frozenset[int], revoked: frozenset[str]) -> list[str]:
    """What the scanner reports: only the lines its needles pick are parsed."""
    data = ("\n".join(lines) + "\n").encode()
    sc = audit_events.scanner(revoked, codes=codes)
    return [r.audit_id for r in sc.scan(data, 0, len(data))]


def base(i: int, code: object = 403, user: str = "alice") -> dict[str, object]:
    return {
        "kind": "Event",
        "auditID": f"id-{i}",
        "stage": "ResponseComplete",
        "verb": "get",
        "user": {"username": user, "groups": ["g"]},
        "objectRef": {"resource": "pods", "namespace": "ns", "name": "p"},
        "responseStatus": {"metadata": {}, "code": code},
    }


def compact(e: object) -> str:
    return json.dumps(e, separators=(",", ":"), ensure_ascii=False)


ADVERSARIAL = [
    # the code's text inside string fields (a candidate, the parse says no / yes)
    '{"auditID":"s1","requestURI":"/x?\\"code\\":403","responseStatus":{"code":200}}',
    '{"auditID":"s2","responseStatus":{"code":403},"requestURI":"\\"code\\":200"}',
    '{"auditID":"s3","annotations":{"r":"code: 403"},"responseStatus":{"code":404}}',
    # whitespace around the colon, anywhere JSON allows it
    '{"auditID":"w1","responseStatus":{"code" :403}}',
    '{"auditID":"w2","responseStatus":{"code": 403}}',
    '{"auditID":"w3","responseStatus":{"code":  403}}',
    '{"auditID":"w4","responseStatus":{"code":\t403}}',
    '{"auditID":"w5","responseStatus":{"code"\t:403}}',
    '{"auditID":"w6","responseStatus":{"code"\r:403}}',
    '{"auditID":"w7","responseStatus":{"code":\r403}}',
    '{ "auditID" : "w8" , "responseStatus" : { "code" : 500 } }',
    # nested objects and duplicate keys: only responseStatus.code counts, the last one wins
    '{"auditID":"n1","responseObject":{"code":403},"responseStatus":{"code":200}}',
    '{"auditID":"n2","responseStatus":{"details":{"code":200},"code":403}}',
    '{"auditID":"n3","responseStatus":{"code":200,"code":403}}',
    '{"auditID":"n4","responseStatus":{"code":403,"code":200}}',
    '{"auditID":"n5","responseStatus":{"status":{"code":200}},"x":{"responseStatus":{"code":1}}}',
    # escaped letters in the key (and elsewhere)
    '{"auditID":"u1","responseStatus":{"\\u0063ode":403}}',
    '{"auditID":"u2","responseStatus":{"co\\u0064e":403}}',
    '{"auditID":"u3","responseStatus":{"cod\\u0065":401}}',
    '{"auditID":"u4","responseStatus":{"c\\u006Fde":503}}',
    '{"auditID":"u5","response\\u0053tatus":{"code":403}}',
    '{"auditID":"u6","responseStatus":{"\\u0063\\u006f\\u0064\\u0065" : 403}}',
    # not integers: not status codes
    '{"auditID":"f1","responseStatus":{"code":403.0}}',
    '{"auditID":"f2","responseStatus":{"code":"403"}}',
    '{"auditID":"f3","responseStatus":{"code":4.03e2}}',
    '{"auditID":"f4","responseStatus":{"code":true}}',
    # a request not yet answered is not reported; garbage is skipped
    '{"auditID":"r1","stage":"RequestReceived","responseStatus":{"code":403}}',
    '{"auditID":"g1","responseStatus":{"code":403}',
    "[403]",
]


@pytest.mark.parametrize("name", sorted(CODE_SETS))
def test_adversarial_lines(name: str) -> None:
    codes = CODE_SETS[name]
    want = reported(ADVERSARIAL, codes, frozenset())
    assert scanned(ADVERSARIAL, codes, frozenset()) == want
    if name == "seed":  # the cases above mean what they say
        assert want == ["s2", "s3"] + [f"w{i}" for i in range(1, 9)] + ["n2", "n3"] + [
            f"u{i}" for i in range(1, 7)
        ]


def test_revoked_users_however_their_name_is_written() -> None:
    revoked = frozenset({"mallory", "алиса", "a&b"})
    lines = [
        compact(base(1, 200, "mallory")),
        '{"auditID":"id-2","user":{"username":"m\\u0061llory"},"responseStatus":{"code":200}}',
        '{"auditID":"id-3","user":{"username": "mallory"},"responseStatus":{"code":200}}',
        '{"auditID":"id-4","user":{"username" :"mallory"},"responseStatus":{"code":200}}',
        '{"auditID":"id-5","user":{"us\\u0065rname":"mallory"},"responseStatus":{"code":200}}',
        compact(base(6, 200, "алиса")),
        json.dumps(base(7, 200, "алиса"), separators=(",", ":")),  # \u0430…
        '{"auditID":"id-8","user":{"username":"a\\u0026b"},"responseStatus":{"code":200}}',
        compact(base(9, 200, "bob")),
    ]
    want = reported(lines, audit_events.FORBIDDEN_CODES, revoked)
    assert want == [f"id-{i}" for i in range(1, 9)]
    assert scanned(lines, audit_events.FORBIDDEN_CODES, revoked) == want


def _random_line(rng: random.Random, i: int) -> str:
    code = rng.choice([200, 201, 304, 400, 401, 403, 404, 418, 500, 503, 599, 600, 4030])
    e = base(i, code, rng.choice(["alice", "mallory", "bob"]))
    if rng.random() < 0.2:
        e["responseObject"] = {"code": rng.choice([200, 403]), "message": '"code":403'}
    if rng.random() < 0.1:
        e["stage"] = "RequestReceived"
    seps = rng.choice([(",", ":"), (",", ":"), (", ", ": "), (",", " :"), (" , ", " : ")])
    text = json.dumps(e, separators=seps, ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.3:
        for letter, esc in (("c", "\\u0063"), ("o", "\\u006f"), ("d", "\\u0064"), ("e", "\\u0065")):
            if rng.random() < 0.5:
                text = text.replace('"code"', '"code"'.replace(letter, esc, 1), 1)
    if rng.random() < 0.2:
        text = text.replace(":", rng.choice([":\t", "\t:", ":\r", ": "]), rng.randint(1, 5))
    return text


@pytest.mark.parametrize("name", sorted(CODE_SETS))
def test_random_json_spellings(name: str) -> None:
    rng = random.Random(17)
    lines = [_random_line(rng, i) for i in range(3000)]
    revoked = frozenset({"mallory"})
    for rev in (frozenset(), revoked):
        want = reported(lines, CODE_SETS[name], rev)
        assert want  # the mix has events to report
        assert scanned(lines, CODE_SETS[name], rev) == want


def test_compact_lines_of_other_codes_are_not_candidates() -> None:
    """The prefilter still filters: the apiserver's own lines of unwanted codes are not
    parsed (each parsed line costs as much as reading ~4,000 others)."""
    lines = [compact(base(i, 200)) for i in range(100)] + [compact(base(100, 403))]
    data = ("\n".join(lines) + "\n").encode()
    sc = audit_events.scanner(frozenset({"mallory"}))
    assert [r.audit_id for r in sc.scan(data, 0, len(data))] == ["id-100"]
    assert sc.stats.candidates == 1


def test_the_follower_hands_on_bounded_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up's records reach the sink in bounded batches (a few read chunks), the
    cursor just behind them: memory holds one batch's records, not the whole log's."""
    monkeypatch.setattr(logscan, "_CHUNK", 4096)
    monkeypatch.setattr(logscan, "_BATCH_RECORDS", 10)
    log = tmp_path / "audit.log"
    lines = [compact(base(i, 403 if i % 4 == 0 else 200)) for i in range(400)]
    log.write_text("\n".join(lines) + "\n")
    batches: list[tuple[int, int]] = []

    def sink(records: list[audit_events.Record]) -> None:
        batches.append((len(records), follower.offset))

    follower = logfollow.Follower(
        log, tmp_path / "cursor.json", sink, audit_events.scanner(frozenset())
    )
    follower.catch_up()
    assert sum(n for n, _ in batches) == 100
    assert len(batches) > 5 and max(n for n, _ in batches) < 10 + 25
    offsets = [off for _, off in batches]
    assert offsets == sorted(offsets) and offsets[-1] < log.stat().st_size
    assert logfollow.Cursor.load(tmp_path / "cursor.json").offset == os.path.getsize(log)
