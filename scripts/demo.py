#!/usr/bin/env python3
"""`make demo`: set up this machine and run podsec's main job, step by step.

Stage 1 (foundation): the rootless-readiness preflight. Later stages extend this script to a
whole secure rootless cluster. `--clean` removes everything the demo created.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

VENV_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def step(title: str, argv: list[str], ok_codes: tuple[int, ...] = (0,)) -> int:
    print(f"\n==> {title}\n    $ {' '.join(argv)}", flush=True)
    rc = subprocess.run(argv, check=False).returncode
    if rc not in ok_codes:
        print(f"demo: step failed with exit {rc}: {title}", file=sys.stderr)
        sys.exit(rc)
    return rc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clean", action="store_true", help="remove what the demo created")
    args = parser.parse_args()
    if args.clean:
        print("demo: nothing to clean")
        return
    podsec = str(VENV_BIN / "podsec")
    # doctor exits 1 when a check fails: the demo shows the findings either way.
    step("Is this machine ready for rootless Kubernetes?", [podsec, "doctor"], ok_codes=(0, 1))


if __name__ == "__main__":
    main()
