#!/usr/bin/env python3
"""`make demo`: podsec's main job on this machine, start to finish, with a progress display.

1. the rootless-readiness preflight (`podsec doctor`);
2. Kubernetes v1.20.2 and its images, built from Debian's source (cached under
   /var/cache/podsec-dev);
3. registry.local + sigstore.local (`podsec policy create`, `podsec services run`), an image
   maker with a GPG key (`podsec users create-imagemaker`), the control-plane images signed
   and pushed;
4. `export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init` — rootless, as u7s-admin,
   images pulled through the signature policy;
5. node Ready, a pod from a signed image Running, a pod from an unsigned image refused,
   `kubectl get nodes -o wide` and the process tree; then everything is torn down.

The machine is not modified: the demo runs in a private mount namespace with the node sandbox
of tests/fixtures/sandbox.py — overlays over /etc, /var, /root, /home, /run and /usr/libexec,
every node-state path (/etc/kubernetes, /var/lib/podsec, /usr/libexec/kubernetes ...) empty,
whatever an earlier run left — so it shows what `make demo` does on a fresh machine (on a
dedicated node the same commands run on the real tree). The parent process stays outside the
namespace and tears down after it: processes left in the sandbox are killed, /dev/net/tun gets
its mode back, and /tmp/podsec-demo is removed after a passing run (a failed run keeps its logs
there). `make demo-clean` (`--clean`) kills whatever an interrupted demo left, restores
/dev/net/tun and removes /tmp/podsec-demo.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.fixtures import sandbox  # noqa: E402 - the node sandbox the e2e tests use too

VENV_BIN = REPO / ".venv" / "bin"
PODSEC = str(VENV_BIN / "podsec")
STATE = Path("/tmp/podsec-demo")
CACHE = Path(os.environ.get("PODSEC_DEV_CACHE", "/var/cache/podsec-dev"))
K8S_VERSION = (REPO / "scripts" / "k8s" / "VERSION").read_text().strip()  # the one pin
K8S_BIN = CACHE / "kubernetes" / K8S_VERSION / "current" / "bin"
IMAGES = CACHE / "images" / K8S_VERSION
REGISTRY_IP = "127.77.0.1"
MAKER = "demo-maker"
U7S_BIN = "/usr/libexec/podsec/u7s/bin"
T0 = time.monotonic()
STEPS = 12
_step = 0


def say(text: str) -> None:
    t = time.monotonic() - T0
    print(f"[{int(t) // 60:02d}:{int(t) % 60:02d}] {text}", flush=True)


def step(title: str) -> None:
    global _step
    _step += 1
    bar = "#" * _step + "." * (STEPS - _step)
    say(f"[{bar}] {_step}/{STEPS} {title}")


def run(
    argv: list[str], *, ok: tuple[int, ...] = (0,), show: bool = True, **kw: object
) -> subprocess.CompletedProcess[str]:
    if show:
        print(f"    $ {' '.join(argv)}", flush=True)
    r = subprocess.run(argv, text=True, capture_output=True, check=False, **kw)  # type: ignore[call-overload]
    if show and r.stdout.strip():
        print("      " + r.stdout.strip().replace("\n", "\n      "), flush=True)
    if r.returncode not in ok:
        print(r.stderr, file=sys.stderr)
        raise SystemExit(f"demo: failed (exit {r.returncode}): {' '.join(argv)}")
    return r  # type: ignore[no-any-return]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update(
        PATH=f"{U7S_BIN}:{K8S_BIN}:{VENV_BIN}:{e.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
        U7S_REGISTRY="registry.local",
        U7S_PLATFORM="p10",
        U7S_CNI_PLUGIN="bridge",  # no flannel images are built here
        KUBECONFIG="/etc/kubernetes/admin.conf",
    )
    return e


POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  tolerations: [{{key: node-role.kubernetes.io/master, operator: Exists, effect: NoSchedule}}]
  containers: [{{name: c, image: "{image}", imagePullPolicy: IfNotPresent, command: [sh, -c, "sleep 3600"]}}]
"""


def wait(what: str, probe, timeout: float = 240) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if probe():
                say(f"    {what}")
                return
        time.sleep(1)
    raise SystemExit(f"demo: timed out waiting: {what}")


def demo() -> None:
    e = env()
    step("Is this machine ready for rootless Kubernetes?")
    r = run([PODSEC, "doctor", "--json"], ok=(0, 1), show=False)
    with contextlib.suppress(ValueError, KeyError, TypeError):
        checks = json.loads(r.stdout)
        items = checks.get("checks", checks) if isinstance(checks, dict) else checks
        for c in items:
            if c.get("status") != "ok":
                say(f"    {c.get('status'):5} {c.get('id')}: {c.get('found', '')}")

    step(f"Kubernetes {K8S_VERSION} from Debian's source, and its images (cached)")
    if not (K8S_BIN / "kubeadm").exists():
        run([str(REPO / "scripts/build-kubernetes")], show=True)
    if not (IMAGES / "oci/index.json").exists():
        run([str(REPO / "scripts/build-images")], show=True)
    refs = (IMAGES / "images.txt").read_text().split()
    say(f"    {len(refs)} images in {IMAGES / 'oci'}")

    step(f"A private view of {', '.join(sandbox.OVERLAID)} (the machine stays untouched)")
    sb = sandbox.enter(STATE)
    for path in sb.emptied:
        say(f"    {path} exists on this machine: the demo starts it empty")

    step("Container trust: registry.local, sigstore.local, reject-by-default policy")
    run([PODSEC, "policy", "create", REGISTRY_IP, "--registry-node"], env=e)

    step("An image maker with a GPG signing key")
    run([PODSEC, "users", "create-imagemaker", MAKER], env=e)

    step("registry.local (:80) and sigstore.local (:81)")
    services = subprocess.Popen(
        [PODSEC, "services", "run", "--address", REGISTRY_IP],
        stdout=(STATE / "services.log").open("w"),
        stderr=subprocess.STDOUT,
        env=e,
        start_new_session=True,
    )
    (STATE / "services.pid").write_text(str(services.pid))
    wait(
        "registry.local answers",
        lambda: (
            subprocess.run(
                ["curl", "-fsS", "http://registry.local/v2/"], capture_output=True, check=False
            ).returncode
            == 0
        ),
    )

    step("The control-plane images, signed by the maker and pushed")
    maker_home = Path(run(["getent", "passwd", MAKER], show=False).stdout.split(":")[5])
    sign_env = {**e, "GNUPGHOME": str(maker_home / ".gnupg")}
    for ref in refs:
        run(
            [
                "skopeo",
                "--insecure-policy",
                "--registries.d",
                str(maker_home / ".config/containers/registries.d"),
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                "--sign-by",
                f"{MAKER}@registry.local",
                f"oci:{IMAGES / 'oci'}:{ref}",
                f"docker://{ref}",
            ],
            env=sign_env,
            show=False,
        )
        say(f"    signed and pushed {ref}")
    run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            f"oci:{IMAGES / 'oci'}:registry.local/p10/busybox:1.35",
            "docker://registry.local/p10/unsigned-busybox:1.35",
        ],
        env=e,
        show=False,
    )
    say("    pushed registry.local/p10/unsigned-busybox:1.35 WITHOUT a signature")

    step("export PATH=/usr/libexec/podsec/u7s/bin/:$PATH; kubeadm init   (rootless, as u7s-admin)")
    run([PODSEC, "u7s", "install"], env=e, show=False)
    t = time.monotonic()
    print("    $ kubeadm init --skip-phases=addon/coredns", flush=True)
    init = subprocess.run(
        ["kubeadm", "init", "--skip-phases=addon/coredns"], env=e, text=True, check=False
    )
    if init.returncode != 0:
        raise SystemExit(f"demo: kubeadm init failed (exit {init.returncode})")

    step("Node Ready")

    def ready() -> bool:
        node = json.loads(run(["kubectl", "get", "nodes", "-o", "json"], env=e, show=False).stdout)[
            "items"
        ][0]
        return any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )

    wait(f"node Ready {time.monotonic() - t:.0f} s after kubeadm init started", ready)

    step("A pod from a signed image runs")
    run([PODSEC, "u7s", "pull", "registry.local/p10/busybox:1.35"], env=e)
    wait(
        "service account default/default exists",
        lambda: (
            subprocess.run(
                ["kubectl", "get", "serviceaccount", "default"],
                env=e,
                capture_output=True,
                check=False,
            ).returncode
            == 0
        ),
    )
    run(
        ["kubectl", "apply", "-f", "-"],
        env=e,
        input=POD.format(name="signed", image="registry.local/p10/busybox:1.35"),
    )
    wait(
        "pod signed Running",
        lambda: (
            "Running"
            in run(
                ["kubectl", "get", "pod", "signed", "-o", "jsonpath={.status.phase}"],
                env=e,
                show=False,
            ).stdout
        ),
    )

    step("A pod from an unsigned image is refused")
    r = run(
        ["kubectl", "apply", "-f", "-"],
        env=e,
        ok=(1,),
        input=POD.format(name="unsigned", image="registry.local/p10/unsigned-busybox:1.35"),
    )
    print("      " + r.stderr.strip(), flush=True)

    step("The cluster and the process tree (every node process is u7s-admin's)")
    run(["kubectl", "get", "nodes", "-o", "wide"], env=e)
    run(["kubectl", "get", "pods", "-A", "-o", "wide"], env=e)
    tree = run(["ps", "-o", "user:10,pid,args", "--forest", "-u", "u7s-admin"], show=False).stdout
    for line in tree.splitlines():
        print("      " + line[:150])
    say("demo done; tearing down")


def teardown() -> None:
    e = env()
    subprocess.run(
        [PODSEC, "u7s", "kubeadm", "reset"], env=e, capture_output=True, check=False, timeout=300
    )
    subprocess.run([PODSEC, "u7s", "stop"], env=e, capture_output=True, check=False, timeout=120)
    with contextlib.suppress(OSError, ValueError):
        pgid = int((STATE / "services.pid").read_text())
        os.killpg(pgid, signal.SIGTERM)
        # registry and nginx take a moment to exit: the parent's leftover scan must not race them
        if not _gone(lambda: _group(pgid), 15):
            os.killpg(pgid, signal.SIGKILL)
    # signing started the maker's gpg-agent (it outlives gpg by design)
    with contextlib.suppress(OSError, IndexError, KeyError, subprocess.SubprocessError):
        home = Path(run(["getent", "passwd", MAKER], show=False, ok=(0, 2)).stdout.split(":")[5])
        subprocess.run(
            ["gpgconf", "--homedir", str(home / ".gnupg"), "--kill", "all"],
            capture_output=True,
            check=False,
            timeout=30,
        )


def _group(pgid: int) -> list[int]:
    """The live (not zombie) members of process group ``pgid``."""
    members = []
    for p in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if p.name.isdigit():
                fields = (p / "stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[2]) == pgid:
                    members.append(int(p.name))
    return members


def _gone(alive, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``alive()`` until it is empty (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _describe(pids: list[int]) -> str:
    """``pid command`` for each pid, so that a leak names itself."""
    names = []
    for pid in pids:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmd = "(gone)"
        names.append(f"{pid} {cmd.strip()[:80]}")
    return "; ".join(names)


def _leftovers() -> list[int]:
    """Processes an earlier or interrupted demo left: those whose mount namespace has the
    sandbox's overlays, and every process in a user namespace one of them made (the node's
    containers: their own mount namespaces show only the node's paths)."""
    me = os.getpid()
    init_userns = str(Path("/proc/self/ns/user").readlink())  # the parent: the machine's
    procs: dict[int, str] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and int(p.name) != me:
            with contextlib.suppress(OSError):
                procs[int(p.name)] = str((p / "ns/user").readlink())
    marked = {pid for pid in procs if sandbox.in_sandbox(pid, STATE)}
    userns = {procs[pid] for pid in marked} - {init_userns}
    return sorted(marked | {pid for pid, ns in procs.items() if ns in userns})


def kill_leftovers() -> int:
    pids = _leftovers()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def clean() -> None:
    """Kill every process an earlier demo left, restore /dev/net/tun, remove the state
    directory (mounts live only in the demo's namespace: from here it is a plain tree)."""
    killed = kill_leftovers()
    if killed:
        print(f"demo: killed {killed} processes an earlier demo left")
    sandbox.restore_tun(STATE)
    if STATE.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=False)
    if STATE.exists():
        raise SystemExit(f"demo: could not remove {STATE}")
    print(f"demo: cleaned ({STATE} removed)")


def outside() -> int:
    """The parent: run the demo in a private mount namespace, then tear down what it left."""
    if STATE.exists():
        clean()
    # Ctrl-C reaches the demo too, which tears its node down; the parent waits for it (a
    # Python handler, not SIG_IGN, so that the child gets the default disposition back)
    signal.signal(signal.SIGINT, lambda *_: None)
    child = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", sys.executable, *sys.argv],
        env={**os.environ, "PODSEC_DEMO_NS": "1"},
    )
    rc = child.wait()
    # a process the teardown stopped may still be exiting (a gpg-agent, a shim): a grace period,
    # then whatever remains is a leak — named, killed, and the demo fails
    _gone(_leftovers, 10)
    stayed = _leftovers()
    left = kill_leftovers()
    if left:
        print(
            f"demo: the teardown left {left} processes (killed): {_describe(stayed)}",
            file=sys.stderr,
        )
    if rc == 0 and not left:
        sandbox.restore_tun(STATE)
        subprocess.run(["rm", "-rf", "--one-file-system", str(STATE)], check=False)
        return 0
    sandbox.restore_tun(STATE)
    print(f"demo: failed; its logs are in {STATE} (make demo-clean removes them)", file=sys.stderr)
    return rc or 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clean", action="store_true", help="remove what the demo created")
    args = parser.parse_args()
    if args.clean:
        clean()
        return
    if os.geteuid() != 0:
        raise SystemExit("demo: run as root (make demo)")
    if not os.environ.get("PODSEC_DEMO_NS"):
        raise SystemExit(outside())
    try:
        demo()
    finally:
        teardown()
    say(f"total {time.monotonic() - T0:.0f} s")


if __name__ == "__main__":
    main()
