"""check-policy over system trees built in tmp dirs: the original's weights, the fixed
defects (division by zero, empty 107 message, nothing written for the writability test),
bad input (one user's broken policy.json, an unreadable home)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from podsec.host.paths import Host
from podsec.monitor import accounts, policy_check
from podsec.monitor.plugin import State, build_thresholds

GOOD_POLICY = {
    "default": [{"type": "reject"}],
    "transports": {
        "docker": {
            "registry.local": [
                {
                    "type": "signedBy",
                    "keyType": "GPGKeys",
                    "keyPath": "/var/sigstore/keys/group1.pgp",
                }
            ]
        }
    },
}
LOOKASIDE = "default-docker:\n  lookaside: http://sigstore.local:81/sigstore/\n  sigstore: http://sigstore.local:81/sigstore/\n"


def add_user(
    root: Path, name: str, uid: int, groups: tuple[str, ...] = ("podman",), storage: bool = True
) -> Path:
    with (root / "etc/passwd").open("a") as fh:
        fh.write(f"{name}:x:{uid}:{uid}::/home/{name}:/bin/bash\n")
    text = (root / "etc/group").read_text()
    lines = []
    for line in text.splitlines():
        gname, _x, gid, members = line.split(":")
        if gname in groups:
            members = ",".join([m for m in members.split(",") if m] + [name])
        lines.append(f"{gname}:x:{gid}:{members}")
    lines.append(f"{name}:x:{uid}:")
    (root / "etc/group").write_text("\n".join(lines) + "\n")
    home = root / "home" / name
    if storage:
        (home / ".local/share/containers/storage/overlay").mkdir(parents=True)
    conf = home / ".config/containers"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "storage.conf").write_text('[storage]\ndriver = "overlay"\n')
    for p in [home, *home.rglob("*")]:
        os.chown(p, uid, uid)
    # podsec locks ~/.config/containers: owned by root, not writable by the user
    os.chown(conf, 0, 0)
    conf.chmod(0o755)
    return home


@pytest.fixture
def tree(host_root: Path) -> Path:
    with (host_root / "etc/group").open("a") as fh:
        fh.write("podman:x:500:\npodman_dev:x:501:\n")
    cdir = host_root / "etc/containers"
    (cdir / "registries.d").mkdir(parents=True)
    (cdir / "policy.json").write_text(json.dumps(GOOD_POLICY))
    (cdir / "registries.d/default.yaml").write_text(LOOKASIDE)
    return host_root


def run(
    root: Path, **flags: str
) -> tuple[policy_check.Result, policy_check.Report, list[tuple[int, str]]]:
    host = Host(root)
    result = policy_check.evaluate(host, accounts.container_accounts(host))
    logged: list[tuple[int, str]] = []
    th, _w = build_thresholds(flags or {"c": "100"})
    rep = policy_check.report(result, th, 2, lambda p, t: logged.append((p, t)))
    return result, rep, logged


def weights(result: policy_check.Result) -> dict[str, int]:
    return {f.key: f.weight for f in result.findings}


def test_clean_node_is_ok_without_podman_users(tree: Path) -> None:
    # no podman-only users: the original divided by zero here
    result, rep, logged = run(tree)
    assert result.findings == [] and rep.state == State.OK
    assert rep.render().startswith("POLICY OK: Containerization policies are not violated | ")
    assert logged == []


def test_each_rule_and_weight(tree: Path) -> None:
    add_user(tree, "good", 2001)
    outsider = add_user(tree, "outsider", 2002, groups=())
    wheel = add_user(tree, "admin", 2003, groups=("podman", "wheel"))
    loose = add_user(tree, "loose", 2004)
    (loose / ".config/containers/storage.conf").unlink()
    os.chown(loose / ".config/containers", 2004, 2004)  # the user may change it
    (outsider / ".config/containers").chmod(0o755)
    # admin's own policy: accepts anything, unsigned docker.io, a forbidden transport,
    # no registry.local signature
    bad = {
        "default": [{"type": "insecureAcceptAnything"}],
        "transports": {
            "docker": {"docker.io": [{"type": "insecureAcceptAnything"}]},
            "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]},
            "containers-storage": {"": [{"type": "insecureAcceptAnything"}]},
        },
    }
    (wheel / ".config/containers/policy.json").write_text(json.dumps(bad))
    (wheel / ".config/containers/registries.d").mkdir()
    result, rep, logged = run(tree)
    w = weights(result)
    assert w["r101"] == 101 and result.findings[0].users == ("outsider",)
    assert w["r102"] == 102 and w["r103"] == 103 and w["r104"] == 104 and w["r105"] == 105
    assert w["r106"] == 106  # admin's empty registries.d: no local lookaside
    assert w["r107"] == 107
    # podman-only users: good, admin, loose → 1 of 3 without storage.conf, 1 of 3 writable
    assert w["storage"] == 90 * 1 // 3 and w["writable"] == 90 * 1 // 3
    by_key = {f.key: f for f in result.findings}
    assert by_key["storage"].users == ("loose",) and by_key["writable"].users == ("loose",)
    assert by_key["r105"].details == ("admin: docker-daemon",)  # containers-storage allowed
    assert rep.state == State.CRITICAL
    assert f"metric {sum(w.values())}" in rep.status_line
    # syslog: one line per rule above the -c 100 range, the original's format; the 107
    # message is not empty any more
    texts = [t for _p, t in logged]
    assert "Critical: Critical(107): Users admin included in the wheel group" in texts
    assert all(p == 2 for p, _t in logged) and len(logged) == 7
    perf = rep.render().splitlines()[0].split(" | ")[1]
    assert f"'metric'={sum(w.values())};;100;0" in perf and "'podman_in_wheel'=107;;;0;107" in perf


def test_writability_check_leaves_no_files(tree: Path) -> None:
    home = add_user(tree, "carol", 2010)
    before = sorted(p.name for p in (home / ".config/containers").iterdir())
    run(tree)
    assert sorted(p.name for p in (home / ".config/containers").iterdir()) == before


def test_broken_policy_in_one_home_others_still_checked(tree: Path) -> None:
    broken = add_user(tree, "broken", 2020)
    (broken / ".config/containers/policy.json").write_text(
        '{"default": [{"type": "reject"}], "bogus": 1}'
    )
    add_user(tree, "outsider", 2021, groups=())
    result, rep, logged = run(tree)
    assert weights(result) == {"r101": 101}
    assert any("broken" in e and "bogus" in e for e in result.errors)
    assert rep.state == State.CRITICAL
    assert any(t.startswith("Fatal: user broken") for _p, t in logged)


def test_only_errors_give_unknown(tree: Path) -> None:
    broken = add_user(tree, "broken", 2030)
    (broken / ".config/containers/policy.json").write_text("{")
    _result, rep, _logged = run(tree)
    assert rep.state == State.UNKNOWN


def test_unreadable_home_reported(tree: Path) -> None:
    add_user(tree, "fine", 2040, groups=("podman",))
    with (tree / "etc/passwd").open("a") as fh:
        fh.write("loop:x:2041:2041::/home/loop:/bin/bash\n")
    (tree / "home/loop").symlink_to("loop")  # ELOOP
    host = Host(tree)
    accts = accounts.container_accounts(host)
    loop = [a for a in accts if a.name == "loop"]
    assert loop and loop[0].error
    result, _rep, _logged = run(tree)
    assert any("loop" in e for e in result.errors)


def test_thresholds_select_warning_and_mail_subject(tree: Path) -> None:
    add_user(tree, "outsider", 2050, groups=())
    _r, rep, logged = run(tree, w="0", c="1000", l="50")
    assert rep.state == State.WARNING
    assert logged and logged[0][0] == 5 and logged[0][1].startswith("Low: Low(101)")


def test_group_names_match_exactly(tree: Path) -> None:
    # the original matched groups with index(): "podman" was found in "podman_dev"
    add_user(tree, "maker", 2060, groups=("podman_dev",))
    result, _rep, _logged = run(tree)
    assert "maker" in {u for f in result.findings if f.key == "r101" for u in f.users}
