"""`make bench`: run every benchmarks/bench_*.py (or the ones named), then write
benchmarks/RESULTS.md — one table, each row the figure, its baseline from the same run, the
ratio the goal is judged on, the goal, met or not, and the load average while it was measured.

A benchmark that crashes (non-zero exit) is listed under the table and makes this exit 1; a
goal that is missed is a row marked "no" (the figures are the result, not a test).

Run: .venv/bin/python benchmarks/run.py [NAME ...] [--out FILE]
     (NAME: bench_u7s_node or u7s_node; default: all)
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import harness

HERE = Path(__file__).resolve().parent


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(rows: list[harness.Row], failed: list[tuple[str, int]], ran: list[str]) -> str:
    commit = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    met = sum(1 for r in rows if r.met is True)
    judged = sum(1 for r in rows if r.met is not None)
    out = [
        "# Benchmark results",
        "",
        f"`make bench` on {now}, commit {commit or '?'}{' (with local changes)' if dirty else ''}, "
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}. "
        f"Goals met: {met} of {judged}.",
        "",
        "CPU time is user + system of every process the figure involves; wall time depends on "
        "the other load of this shared machine, so ratio goals are judged on CPU time against "
        "a baseline measured in the same run. *Load* is the 1-minute load average sampled "
        "while the figure was measured.",
        "",
        "| benchmark | figure | same-run baseline | ratio | goal | met | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        verdict = {True: "yes", False: "**no**", None: "—"}[r.met]
        name = r.name + (f" ({r.note})" if r.note else "")
        out.append(
            "| "
            + " | ".join(
                _cell(x) for x in (name, r.figure, r.baseline, r.ratio, r.goal, verdict, r.load)
            )
            + " |"
        )
    out.append("")
    out.append("Benchmarks run: " + ", ".join(f"`{b}`" for b in ran) + ".")
    if failed:
        out.append("")
        out.append("Did not finish (their rows are missing or partial):")
        out.extend(f"- `{b}` exited {code}" for b, code in failed)
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    every = sorted(HERE.glob("bench_*.py"))
    if args.names:
        wanted = {n.removesuffix(".py").removeprefix("bench_") for n in args.names}
        chosen = [b for b in every if b.stem.removeprefix("bench_") in wanted]
        unknown = wanted - {b.stem.removeprefix("bench_") for b in chosen}
        if unknown:
            print(f"run.py: no such benchmark: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
    else:
        chosen = every
    results = HERE / ".results.jsonl"
    results.unlink(missing_ok=True)
    env = {**os.environ, harness.RESULTS_ENV: str(results)}
    failed: list[tuple[str, int]] = []
    for bench in chosen:
        print(f"== {bench.relative_to(HERE.parent)}", flush=True)
        t0 = time.monotonic()
        code = subprocess.run([sys.executable, str(bench)], env=env, check=False).returncode
        print(f"== {bench.name}: exit {code} after {time.monotonic() - t0:.0f} s", flush=True)
        if code != 0:
            failed.append((bench.name, code))
    rows = harness.read_rows(results)
    args.out.write_text(render(rows, failed, [b.name for b in chosen]))
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
