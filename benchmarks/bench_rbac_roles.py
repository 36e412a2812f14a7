"""``roles USER`` on a big cluster: 200 namespaces, 2,000 RoleBindings, 50 ClusterRoleBindings,
the user bound in 30 of them (plus 5 through a group of its certificate).

Measured in the same run, whole process (start-up included), median of --runs:
  A. the original's method, reimplemented here as a bash loop: one ``kubectl`` + ``jq`` for the
     ClusterRoleBindings, ``kubectl get ns``, then one ``kubectl -n NS get rolebinding`` + ``jq``
     per namespace (and one ``kubectl get <role>`` + ``jq`` per found binding for showRules);
     reference figure ../shared/reference/baselines.md: 9.81 s, showRules 11.17 s;
  B. a single ``kubectl get rolebindings,clusterrolebindings -A -o json | jq`` (0.39-0.42 s);
  C. ``podsec rbac roles USER`` and ``podsec rbac roles USER showRules``.
Goals: C ≥ 10× faster than A, C no slower than B, C showRules < 1 s.

Run: python benchmarks/bench_rbac_roles.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

import harness  # noqa: E402
from tests.fixtures.kube import k8s_bin_dir, running_control_plane  # noqa: E402

from podsec.host.paths import Host  # noqa: E402
from podsec.kube import kubeconfig  # noqa: E402
from podsec.kube.client import RBAC, Client  # noqa: E402

NAMESPACES = 200
ROLEBINDINGS = 2000
CLUSTERROLEBINDINGS = 50
USER = "alice"
GROUP = "devs"
BIN = Path(sys.executable).parent

# A: the original's algorithm (podsec-k8s-rbac-get-userroles), rewritten as a plain loop.
ORIGINAL_METHOD = r"""
set -u
user=$1; show=${2:-}
filter='.items[] | select(.subjects != null and any(.subjects[]; .name == $u))
        | [.metadata.name, .roleRef.kind, .roleRef.name] | @tsv'
crs=$(kubectl get clusterrolebinding -o json | jq -r --arg u "$user" "$filter")
out='{"clusterRoles":['
sep=
while IFS=$'\t' read -r bind kind role; do
  [ -n "$bind" ] || continue
  item="{\"bindName\":\"$bind\",\"roleType\":\"$kind\",\"roleName\":\"$role\"}"
  if [ "$show" = showRules ]; then
    rules=$(kubectl get "$kind" "$role" -o json | jq -c .rules)
    item="${item%\}},\"rules\":$rules}"
  fi
  out+="$sep$item"; sep=,
done <<< "$crs"
out+='],"namespaces":['
nsep=
for ns in $(kubectl get ns -o json | jq -r '.items[].metadata.name'); do
  rbs=$(kubectl -n "$ns" get rolebinding -o json | jq -r --arg u "$user" "$filter")
  [ -n "$rbs" ] || continue
  items=; sep=
  while IFS=$'\t' read -r bind kind role; do
    item="{\"bindName\":\"$bind\",\"roleType\":\"$kind\",\"roleName\":\"$role\"}"
    if [ "$show" = showRules ]; then
      if [ "$kind" = Role ]; then
        rules=$(kubectl -n "$ns" get role "$role" -o json | jq -c .rules)
      else
        rules=$(kubectl get clusterrole "$role" -o json | jq -c .rules)
      fi
      item="${item%\}},\"rules\":$rules}"
    fi
    items+="$sep$item"; sep=,
  done <<< "$rbs"
  out+="$nsep{\"$ns\":[$items]}"; nsep=,
done
echo "$out]}" | jq .
"""

SINGLE_FILTER = (
    '[.items[] | select(.subjects != null and any(.subjects[]; .name == "alice"))'
    " | {kind, name: .metadata.name, ns: .metadata.namespace, role: .roleRef}]"
)


def populate(api: Client) -> int:
    """Create the objects through the API, 8 requests in flight; return how many bind USER."""
    ns_names = [f"bench-{i:03d}" for i in range(NAMESPACES)]

    def ns(name: str) -> None:
        api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    def subjects(i: int) -> list[dict[str, str]]:
        out = [{"kind": "User", "name": f"user{i % 97}", "apiGroup": "rbac.authorization.k8s.io"}]
        if i % 67 == 0:  # 30 of the 2,000 RoleBindings name alice
            out.append({"kind": "User", "name": USER, "apiGroup": "rbac.authorization.k8s.io"})
        return out

    def rb(i: int) -> None:
        namespace = ns_names[i % NAMESPACES]
        body = {
            "metadata": {"name": f"rb-{i:04d}", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view" if i % 2 else "edit",
            },
            "subjects": subjects(i),
        }
        api.request("POST", f"{RBAC}/namespaces/{namespace}/rolebindings", body)

    def crb(i: int) -> None:
        subs = [{"kind": "User", "name": f"user{i}", "apiGroup": "rbac.authorization.k8s.io"}]
        if i % 10 == 0:  # 5 reach alice through her certificate's group
            subs.append({"kind": "Group", "name": GROUP, "apiGroup": "rbac.authorization.k8s.io"})
        body = {
            "metadata": {"name": f"crb-{i:03d}"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": subs,
        }
        api.request("POST", f"{RBAC}/clusterrolebindings", body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ns, ns_names))
        list(pool.map(rb, range(ROLEBINDINGS)))
        list(pool.map(crb, range(CLUSTERROLEBINDINGS)))
    return sum(1 for i in range(ROLEBINDINGS) if i % 67 == 0)


CPU: dict[str, list[float]] = {}  # CPU seconds of each run (every process), by command


def timed(
    argv: list[str], env: dict[str, str], runs: int, stdin_from: list[str] | None = None
) -> tuple[float, str]:
    """Median wall seconds and the output; each run's CPU time is kept in :data:`CPU`."""
    times, out = [], ""
    for _ in range(runs):
        c0 = harness.self_cpu()
        t0 = time.monotonic()
        if stdin_from is None:
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=True)
            out = proc.stdout
        else:  # a two-process pipeline without a shell
            first = subprocess.Popen(stdin_from, stdout=subprocess.PIPE, env=env)
            proc = subprocess.run(
                argv, stdin=first.stdout, capture_output=True, text=True, env=env, check=True
            )
            assert first.stdout is not None
            first.stdout.close()
            first.wait()
            out = proc.stdout
        times.append(time.monotonic() - t0)
        CPU.setdefault(argv[-1] if argv[0] == "jq" else " ".join(argv), []).append(
            harness.self_cpu() - c0
        )
    return statistics.median(times), out


def report(a: float, a_rules: float, b: float, c: float, c_rules: float) -> None:
    cpu_a, cpu_b, cpu_c = (statistics.median(CPU[k]) for k in ("A", "B", "C"))
    print(f"CPU (every process): A {cpu_a:.2f} s, B {cpu_b:.3f} s, C {cpu_c:.3f} s")
    load = f"{os.getloadavg()[0]:.1f}"
    harness.record(
        f"rbac roles, {ROLEBINDINGS:,} RoleBindings in {NAMESPACES} namespaces vs the original",
        figure=harness.wall_cpu(c, cpu_c),
        baseline="original (kubectl + jq per namespace): " + harness.wall_cpu(a, cpu_a),
        ratio=f"{harness.times(cpu_a / cpu_c)} by CPU ({harness.times(a / c)} wall)",
        goal=">= 10× by CPU",
        met=cpu_a / cpu_c >= 10,
        load=load,
    )
    harness.record(
        "rbac roles vs one kubectl get -A | jq",
        figure=harness.wall_cpu(c, cpu_c),
        baseline="kubectl | jq: " + harness.wall_cpu(b, cpu_b),
        ratio=f"{harness.times(cpu_b / cpu_c)} by CPU ({harness.times(b / c)} wall)",
        goal=">= 1× by CPU",
        met=cpu_b / cpu_c >= 1.0,
        load=load,
        note=f"showRules {harness.secs(c_rules)} (goal < 1 s; original {harness.secs(a_rules)})",
    )


def sandbox_user(root: Path, cp_kubeconfig_for: Callable[..., Path]) -> None:
    """USER's Linux account and certificate kubeconfig (O=devs) in a --root tree, so the timed
    command takes the real path: read the certificate's groups, then ask the API."""
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        f"root:x:0:0::/root:/bin/bash\n{USER}:x:1000:1000::/home/{USER}:/bin/bash\n"
    )
    (root / "etc/group").write_text("root:x:0:\nk8s:x:999:alice\n")
    kube = root / "home" / USER / ".kube"
    kube.mkdir(parents=True)
    made = cp_kubeconfig_for(kube, USER, [GROUP])
    made.rename(kube / "config")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--original-runs", type=int, default=1)
    args = parser.parse_args()
    bin_dir = k8s_bin_dir()
    for tool in ("kubectl", "jq", "bash"):
        if shutil.which(tool) is None:
            print(f"bench_rbac_roles: {tool} is missing", file=sys.stderr)
            return 2
    if not (bin_dir / "kube-apiserver").is_file():
        print(
            f"bench_rbac_roles: {bin_dir}/kube-apiserver missing; run scripts/build-kubernetes",
            file=sys.stderr,
        )
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="podsec-bench-rbac-") as tmp,
        running_control_plane(Path(tmp) / "cp", bin_dir) as cp,
    ):
        t0 = time.monotonic()
        with Client(kubeconfig.admin_connection(str(cp.kubeconfig), Host())) as api:
            direct = populate(api)
        print(
            f"populated {NAMESPACES} namespaces, {ROLEBINDINGS} RoleBindings, "
            f"{CLUSTERROLEBINDINGS} ClusterRoleBindings in {time.monotonic() - t0:.1f} s "
            f"({direct} RoleBindings name {USER}, 5 ClusterRoleBindings reach it via group {GROUP})"
        )
        root = Path(tmp) / "root"
        sandbox_user(root, cp.kubeconfig_for)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PODSEC"))}
        env.update(KUBECONFIG=str(cp.kubeconfig), HOME=tmp, LANG="C.UTF-8")
        script = Path(tmp) / "original-method.sh"
        script.write_text(ORIGINAL_METHOD)

        ours = [str(BIN / "podsec"), "--root", str(root), "rbac", "roles", USER]
        kubectl_all = ["kubectl", "get", "rolebindings,clusterrolebindings", "-A", "-o", "json"]
        legacy_env = {**env, "PODSEC_ROOT": str(root)}
        # interleaved rounds: the machine's load drifts, every contender sees the same drift
        samples: dict[str, list[float]] = {"c": [], "c_rules": [], "legacy": [], "b": []}
        for _ in range(args.runs):
            t, c_out = timed(ours, env, 1)
            samples["c"].append(t)
            t, c_rules_out = timed([*ours, "showRules"], env, 1)
            samples["c_rules"].append(t)
            t, _out = timed([str(BIN / "podsec-k8s-rbac-get-userroles"), USER], legacy_env, 1)
            samples["legacy"].append(t)
            t, b_out = timed(["jq", SINGLE_FILTER], env, 1, stdin_from=kubectl_all)
            samples["b"].append(t)
        c, c_rules, legacy, b = (
            statistics.median(samples[k]) for k in ("c", "c_rules", "legacy", "b")
        )
        a, a_out = timed(["bash", str(script), USER], env, args.original_runs)
        a_rules, _out = timed(["bash", str(script), USER, "showRules"], env, args.original_runs)

        # the answers agree: same bindings naming the user directly
        doc = json.loads(c_out)[USER]
        ours_direct = {
            (ns, i["bindRoleName"])
            for entry in doc["roles"]["namespaces"]
            for ns, items in entry.items()
            for i in items
            if "viaGroup" not in i
        } | {(None, i["bindRoleName"]) for i in doc["clusterRoles"] if "viaGroup" not in i}
        single = {(i["ns"], i["name"]) for i in json.loads(b_out)}
        original = json.loads(a_out)
        orig_set = {
            (ns, i["bindName"])
            for e in original["namespaces"]
            for ns, items in e.items()
            for i in items
        }
        assert ours_direct == single == orig_set, (ours_direct ^ single, single ^ orig_set)
        via_group = sum(1 for i in doc["clusterRoles"] if i.get("viaGroup") == GROUP)
        assert via_group == 5, via_group
        assert all("rules" in i for i in json.loads(c_rules_out)[USER]["clusterRoles"])

    print(
        f"A original method (kubectl+jq per namespace): {a:.2f} s; showRules {a_rules:.2f} s (n={args.original_runs})"
    )
    print(f"B single kubectl get -A | jq:                 {b:.3f} s (n={args.runs})")
    print(
        f"C podsec rbac roles:                          {c:.3f} s; showRules {c_rules:.3f} s; podsec-k8s-rbac-get-userroles {legacy:.3f} s (n={args.runs})"
    )
    CPU["A"], CPU["B"] = CPU[" ".join(["bash", str(script), USER])], CPU[SINGLE_FILTER]
    CPU["C"] = CPU[" ".join(ours)]
    report(a, a_rules, b, c, c_rules)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
