"""No shell strings, no eval, and only host.run starts programs (pipelines included)."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "podsec"
RUNNER = SRC / "host" / "run.py"


def test_no_shell_eval_or_stray_subprocess() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                offenders.append(f"{path}: shell=")
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("eval", "exec")
            ):
                offenders.append(f"{path}:{node.lineno}: {node.func.id}()")
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("system", "popen")
                and getattr(node.value, "id", "") == "os"
            ):
                offenders.append(f"{path}:{node.lineno}: os.{node.attr}")
            if path != RUNNER and isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if "subprocess" in names:
                    offenders.append(
                        f"{path}:{node.lineno}: imports subprocess (use podsec.host.run)"
                    )
            # a child started past the runner is not logged and has no CommandError
            if (
                path != RUNNER
                and isinstance(node, ast.Attribute | ast.Name)
                and (node.attr if isinstance(node, ast.Attribute) else node.id)
                in ("Popen", "PIPE", "DEVNULL", "STDOUT")
            ):
                offenders.append(f"{path}:{node.lineno}: Popen/pipe (use host.run.stream)")
    assert offenders == []


def test_the_kubernetes_pin_has_one_value() -> None:
    """scripts/k8s/VERSION is the pin; the two build scripts keep a copy (their own text is
    part of their cache key, so they cannot read it without a rebuild) which must agree."""
    import re

    repo = SRC.parents[1]
    pin = (repo / "scripts" / "k8s" / "VERSION").read_text().strip()
    assert re.fullmatch(r"v\d+\.\d+\.\d+", pin)
    for script in ("build-kubernetes", "build-images"):
        text = (repo / "scripts" / script).read_text()
        assert f"\nK8S_VERSION={pin}\n" in text, script
    # code (a string literal, not prose) naming the cache by the version itself
    literal = re.compile(rf"""["'][^"']*podsec-dev/(kubernetes|images)/{re.escape(pin)}""")
    stray = [
        f"{path}:{n}"
        for path in [
            *repo.glob("tests/**/*.py"),
            *repo.glob("benchmarks/*.py"),
            repo / "scripts/demo.py",
        ]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert stray == [], "read the pin from tests/fixtures/require.py (or benchmarks' harness)"
    assert pin not in (repo / "Makefile").read_text()


def test_tests_import_helpers_from_the_helpers_module() -> None:
    """conftest.py holds hooks and fixtures; a helper imported from it is a second home."""
    repo = SRC.parents[1]
    offenders = [
        f"{path}:{n}"
        for path in [*repo.glob("tests/**/*.py"), *repo.glob("benchmarks/*.py")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if line.lstrip().startswith(("from tests.conftest import", "import tests.conftest"))
    ]
    assert offenders == [], "import helpers from tests/fixtures/require.py"
