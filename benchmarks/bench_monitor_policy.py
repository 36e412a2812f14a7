"""check-policy: start-up with nothing to do (goal < 0.3 s), 1,000 users (goal < 2 s, peak
RSS < 80 MB), against the original bash plugin's recorded figure (245.3 s for 1,000 users,
reference/baselines.md: it needs yq and ALT's layout, so it is not re-run here).

Run: .venv/bin/python benchmarks/bench_monitor_policy.py [USERS]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import harness

BIN = Path(sys.executable).parent
USERS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
ORIGINAL_1000 = 245.3  # seconds, reference/baselines.md

POLICY = {
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


def build(root: Path, users: int) -> None:
    etc = root / "etc"
    (etc / "containers/registries.d").mkdir(parents=True)
    (etc / "containers/policy.json").write_text(json.dumps(POLICY))
    (etc / "containers/registries.d/default.yaml").write_text(
        "default-docker:\n  lookaside: http://sigstore.local:81/sigstore/\n"
    )
    passwd = ["root:x:0:0:root:/root:/bin/bash"]
    members = []
    for i in range(users):
        name = f"u{i:04d}"
        uid = 10000 + i
        passwd.append(f"{name}:x:{uid}:{uid}::/home/{name}:/bin/bash")
        members.append(name)
        home = root / "home" / name
        (home / ".local/share/containers/storage/overlay").mkdir(parents=True)
        conf = home / ".config/containers"
        conf.mkdir(parents=True)
        if i % 10:
            (conf / "storage.conf").write_text('[storage]\ndriver = "overlay"\n')
        if i % 100 == 0:  # a few users with their own (bad) policy
            (conf / "policy.json").write_text(
                json.dumps({"default": [{"type": "insecureAcceptAnything"}]})
            )
        os.chown(home, uid, uid)
    (etc / "passwd").write_text("\n".join(passwd) + "\n")
    groups = [
        "root:x:0:",
        "wheel:x:10:" + ",".join(members[:3]),
        "podman:x:500:" + ",".join(members),
        "podman_dev:x:501:",
    ]
    groups += [f"{m}:x:{10000 + i}:" for i, m in enumerate(members)]
    (etc / "group").write_text("\n".join(groups) + "\n")


def timed(root: Path) -> harness.Run:
    # byte-compiled modules, as on a node (see bench_startup): the cache lives beside the tree
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "PYTHONPYCACHEPREFIX": str(root.parent / "pycache"),
        "PODSEC_ROOT": str(root),
        "PODSEC_SYSLOG_SOCKET": str(root / "no.sock"),
    }
    return harness.run(
        [str(BIN / "podsec-inotify-check-policy"), "-c", "100"], env=env, capture=True
    )


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="podsec-bench-policy."))
    try:
        empty = work / "empty"
        build(empty, 0)
        timed(empty)  # fills the byte-code cache; not counted
        with harness.load() as meter:
            startups = [timed(empty) for _ in range(5)]
        for r in startups:
            assert r.returncode == 0, r.stdout + r.stderr
        start, start_cpu = harness.median_run(startups)
        print(
            f"start-up to first output, nothing to do: median {start * 1000:.0f} ms (goal < 300 ms)"
        )

        full = work / "full"
        t = time.perf_counter()
        build(full, USERS)
        print(f"built {USERS} users in {time.perf_counter() - t:.1f} s")
        with harness.load() as meter2:
            runs = [timed(full) for _ in range(3)]
        r = runs[-1]
        assert r.returncode == 2, r.stdout[:500] + r.stderr
        wall, cpu = harness.median_run(runs)
        peak = max(x.maxrss_kb for x in runs)
        print(r.stdout.decode().splitlines()[0][:160])
        print(
            f"check-policy over {USERS} users: median {wall:.2f} s (goal < 2 s), peak RSS "
            f"{peak / 1024:.0f} MB (goal < 80 MB)"
        )
        harness.record(
            "check-policy start-up, nothing to do",
            figure=harness.wall_cpu(start, start_cpu),
            baseline="—",
            ratio="—",
            goal="< 300 ms",
            met=start_cpu < 0.3 and start < 0.3,
            load=meter.text,
        )
        harness.record(
            f"check-policy, {USERS:,} users",
            figure=harness.wall_cpu(wall, cpu) + f", peak RSS {peak / 1024:.0f} MB",
            baseline=f"recorded: the original bash plugin {ORIGINAL_1000:.0f} s for 1,000 users "
            "(needs yq and ALT: not re-run)",
            ratio=f"{harness.times(ORIGINAL_1000 / wall)} wall" if USERS == 1000 else "—",
            goal="< 2 s, RSS < 80 MB",
            met=wall < 2 and peak / 1024 < 80,
            load=meter2.text,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
