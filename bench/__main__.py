"""``make bench``: every benchmark, each in its own process (its own emulators and clients, as a fresh machine would
have them), each printing its ratio against a floor measured in the same run; then a summary table.

``python -m bench bench_x`` runs one benchmark in this process (``python -m bench bench_many_stores scale``: a part).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
import time
from pathlib import Path

import bench

RATIO = re.compile(r"^\s+(?P<name>.+?)\s{2,}.*ratio\s+(?P<ratio>[\d.]+|inf)\s+\(goal (?P<goal>[^)]+)\)")


def names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules([str(Path(bench.__file__).parent)]) if m.name.startswith("bench_")
    )


def run_one(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    print(f"== {name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}", flush=True)
    module.run()


def main() -> None:
    selected = sys.argv[1:]
    if len(selected) == 1 or (len(selected) > 1 and not selected[1].startswith("bench_")):
        run_one(selected[0])  # one benchmark here (the words after its name are its own: see its docstring)
        return
    rows: list[tuple[str, str, str, str]] = []
    failed: list[str] = []
    for name in selected or names():
        started = time.monotonic()
        answer = subprocess.run(
            [sys.executable, "-m", "bench", name],
            capture_output=True,
            text=True,
            env={**os.environ, "POWERTOOLS_LOG_LEVEL": "ERROR"},
            check=False,
        )
        lines = [line for line in answer.stdout.splitlines() if not line.startswith("{")]
        print("\n".join(lines), flush=True)
        if answer.returncode != 0:
            failed.append(name)
            print(f"  {name} failed (exit {answer.returncode}):\n{answer.stderr[-2000:]}", flush=True)
        for line in lines:
            found = RATIO.match(line)
            if found:
                rows.append((name, found["name"], found["ratio"], found["goal"]))
        print(f"  ({name} took {time.monotonic() - started:.0f} s)", flush=True)
    print("\nsummary")
    print(f"  {'benchmark':<22} {'measure':<70} {'ratio':>6}  goal")
    for bench_name, measure, ratio, goal in rows:
        print(f"  {bench_name:<22} {measure[:70]:<70} {ratio:>6}  {goal}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
