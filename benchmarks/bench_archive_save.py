"""Archive size and build time: ``podsec images save`` vs the original's method, same run.

Image set: the harness's locally built Kubernetes v1.20.2 images (scripts/build-images:
apiserver, controller-manager, scheduler, proxy, etcd, pause, busybox; one layout under
/var/cache/podsec-dev/images/v1.20.2/oci), first imported into a private containers-storage
(vfs, not timed) — the source both methods read, as podsec-save-oci did.

Baseline (reference §3.8): ``skopeo copy --dest-oci-accept-uncompressed-layers
containers-storage:… oci:DIR/amd64:REF`` for each image, then ``tar cf - -C DIR amd64 |
xz -9``. Goal (issue 17): archive ≤ 1.0× the baseline's size at ≤ 0.5× its CPU time (user +
system of every process of each method; wall time is printed beside it).

Run: python benchmarks/bench_archive_save.py [--zstd] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = Path(__file__).resolve().parents[1]
IMAGES = harness.IMAGES_DIR
PODSEC = REPO / ".venv" / "bin" / "podsec"


def sh(argv: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload, no-any-return]


def import_images(layout: Path, refs: list[str], store: str) -> None:
    for ref in refs:
        sh(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--quiet",
                f"oci:{layout}:{ref}",
                f"{store}{ref}",
            ]
        )


def cpu() -> float:
    """CPU seconds of every finished child process (contention-proof, unlike wall time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def baseline(store: str, refs: list[str], work: Path) -> tuple[int, float]:
    """The original's podsec-save-oci: skopeo into one uncompressed OCI layout, tar | xz -9."""
    out = work / "amd64.tar.xz"
    t0 = time.monotonic()
    for ref in refs:
        name = ref.split("/", 1)[1]  # the original stored names without the registry
        sh(
            [
                "skopeo",
                "--insecure-policy",
                "--override-arch",
                "amd64",
                "copy",
                "--quiet",
                "--dest-oci-accept-uncompressed-layers",
                f"{store}{ref}",
                f"oci:{work}/amd64:{name}",
            ]
        )
    with out.open("wb") as fh:
        tar = subprocess.Popen(["tar", "cf", "-", "-C", str(work), "amd64"], stdout=subprocess.PIPE)
        sh(["xz", "-9"], stdin=tar.stdout, stdout=fh)
        assert tar.wait() == 0
    elapsed = time.monotonic() - t0
    return out.stat().st_size, elapsed


def ours(store: str, refs: list[str], out: Path, zstd: bool) -> tuple[int, float]:
    argv = [str(PODSEC), "images", "save", str(out), "amd64", store, *refs, "--json"]
    if zstd:
        argv.append("--zstd")
    t0 = time.monotonic()
    sh(argv, stdout=subprocess.DEVNULL)
    elapsed = time.monotonic() - t0
    archive = out / ("amd64.tar.zst" if zstd else "amd64.tar.xz")
    return archive.stat().st_size, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zstd", action="store_true", help="also measure --zstd")
    parser.add_argument("--keep", type=Path, help="copy our amd64.tar.xz here (for the load bench)")
    args = parser.parse_args()
    layout = IMAGES / "oci"
    if not (layout / "index.json").is_file():
        print(f"bench_archive_save: {layout} missing; run scripts/build-images", file=sys.stderr)
        return 2
    refs = [
        line.strip() for line in (IMAGES / "images.txt").read_text().splitlines() if line.strip()
    ]
    with tempfile.TemporaryDirectory(prefix="podsec-bench-save-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        # a private copy: the harness may rebuild its layout while we run
        private = base / "layout"
        shutil.copytree(layout, private, copy_function=os.link)
        store = f"containers-storage:[vfs@{base}/storage+{base}/run]"
        import_images(private, refs, store)
        layout_bytes = sum(p.stat().st_size for p in (private / "blobs").rglob("*") if p.is_file())
        print(f"image set: {len(refs)} images, {layout_bytes / 1e6:.1f} MB of blobs")

        (base / "orig").mkdir()
        with harness.load() as meter:
            c0 = cpu()
            b_size, b_time = baseline(store, refs, base / "orig")
            c1 = cpu()
            print(
                f"baseline (skopeo → OCI uncompressed, tar | xz -9): {b_size / 1e6:.2f} MB "
                f"in {b_time:.1f} s, CPU {c1 - c0:.1f} s"
            )
            o_size, o_time = ours(store, refs, base / "ours", zstd=False)
            c2 = cpu()
        b_cpu, o_cpu = c1 - c0, c2 - c1
        print(
            f"podsec images save (xz):                          {o_size / 1e6:.2f} MB "
            f"in {o_time:.1f} s, CPU {o_cpu:.1f} s"
        )
        size_ratio, cpu_ratio = o_size / b_size, o_cpu / b_cpu
        harness.record(
            f"archive save, {len(refs)} k8s images ({layout_bytes / 1e6:.0f} MB) vs tar | xz -9",
            figure=f"{o_size / 1e6:.1f} MB, " + harness.wall_cpu(o_time, o_cpu),
            baseline=f"{b_size / 1e6:.1f} MB, " + harness.wall_cpu(b_time, b_cpu),
            ratio=f"CPU {cpu_ratio:.2f}×, size {size_ratio:.3f}× (wall {o_time / b_time:.2f}×)",
            goal="CPU <= 0.5×, size <= 1.0×",
            met=cpu_ratio <= 0.5 and size_ratio <= 1.0,
            load=meter.text,
            size=o_size,
            baseline_size=b_size,
            cpu=o_cpu,
            baseline_cpu=b_cpu,
            wall=o_time,
            baseline_wall=b_time,
        )
        if args.zstd:
            z_size, z_time = ours(store, refs, base / "ours-zstd", zstd=True)
            print(
                f"podsec images save --zstd: {z_size / 1e6:.2f} MB in {z_time:.1f} s "
                f"(size {z_size / b_size:.3f}x, time {z_time / b_time:.3f}x)"
            )
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copy(base / "ours" / "amd64.tar.xz", args.keep / "amd64.tar.xz")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
