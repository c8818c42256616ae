"""Benchmark: every stage of a build, cold and warm, measured in one run.

Four `invoke build` runs, one after the other, as a user types them (a new process each), on one
fresh cache directory, builds directory and pair of Go cache volumes:

  cold          the tag for the first time: fetch, patch, compile (empty build cache), verify,
                package
  warm-years    the same tag with other --years (what operators do next)
  add-platform  warm-years plus linux/arm64 (verified under qemu)
  identical     add-platform again: answered from the existing build

Each run is broken down by stage from the timings the pipeline records
(``<cache>/logs/<build id>.timings.json``): startup (interpreter and imports), prepare (settings,
sweep, engine, image, an existing build), fetch, patch, compile, verify, package, the time
between stages, cleanup, and exit (summary, interpreter teardown). Then the ratios and the
goals, as PASS/FAIL lines.

    python benchmarks/stages.py                       # a stand-in repository, CI-sized
    python benchmarks/stages.py --repo URL --version TAG [--go-version X] [--image I]

Without --repo, a stand-in repository of the tag is made in a temporary directory exactly as the
tests make one. Exits 1 when a goal is missed (--no-fail: always 0).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import fresh_volumes  # noqa: E402
from longcert.package import build_id  # noqa: E402
from tests.fixtures import standin  # noqa: E402

# Goals (issue 11): end to end, the identical rebuild, and what a warm build spends outside
# the compiler.
WARM_RATIO_GOAL = 0.2
IDENTICAL_GOAL = 5.0
FIXED_COSTS_GOAL = 15.0
COLUMNS = ("startup", "prepare", "fetch", "patch", "compile", "verify", "package",
           "between stages", "cleanup", "exit")


@dataclass(frozen=True)
class Run:
    """One timed `invoke build`."""

    label: str
    wall: float
    stages: dict[str, float]  # every COLUMNS entry; they add up to ``wall``

    def get(self, name: str) -> float:
        return self.stages.get(name, 0.0)


def timed_build(label: str, tag: str, years: int, platforms: str, extra: list[str],
                env: dict[str, str], cache: Path, workdir: Path) -> Run:
    """`invoke build` in a new process; its stages from the timings file it wrote."""
    argv = [sys.executable, "-m", "invoke", "-r", str(ROOT), "build", "--version", tag,
            "--years", str(years), "--platforms", platforms, *extra]
    spawned = time.time()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=workdir,
                            check=False)
    ended = time.time()
    if result.returncode != 0:
        sys.exit(f"{label}: `invoke build` failed (exit {result.returncode}):\n"
                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    name = build_id(tag, years, max(years, 10), platforms=tuple(platforms.split(",")))
    record = json.loads((cache / "logs" / f"{name}.timings.json").read_text())
    if not spawned <= record["started"] <= record["ended"] <= ended:
        sys.exit(f"{label}: {name}.timings.json is not from this run")
    stages = {"startup": record["started"] - spawned, "exit": ended - record["ended"]}
    for entry in record["stages"]:
        stages[entry["name"]] = stages.get(entry["name"], 0.0) + entry["seconds"]
    # The run's total minus its entries: rounding only (end_run accounts for every second).
    stages["between stages"] = (stages.get("between stages", 0.0) + record["total"]
                                - sum(e["seconds"] for e in record["stages"]))
    unknown = set(stages) - set(COLUMNS)
    for name in unknown:  # e.g. a publish stage: shown under package
        stages["package"] = stages.get("package", 0.0) + stages.pop(name)
    return Run(label, ended - spawned, stages)


def table(runs: list[Run]) -> str:
    width = max(len(c) for c in COLUMNS) + 2
    lines = ["".ljust(width) + "".join(r.label.rjust(14) for r in runs)]
    for column in COLUMNS:
        lines.append(column.ljust(width) + "".join(f"{r.get(column):13.2f}s" for r in runs))
    lines.append("total (wall)".ljust(width) + "".join(f"{r.wall:13.2f}s" for r in runs))
    return "\n".join(lines)


def verdict(what: str, ok: bool) -> str:
    return f"{'PASS' if ok else 'FAIL'}  {what}"


def report(tag: str, runs: list[Run]) -> tuple[str, bool]:
    cold, warm, platform, identical = runs
    fixed = warm.wall - warm.get("compile")
    compile_ratio = warm.get("compile") / cold.get("compile") if cold.get("compile") else 0.0
    lines = [
        f"{tag}: every stage of four builds (seconds, {os.cpu_count()} cores)",
        table(runs),
        "",
        f"warm-years / cold, end to end:   {warm.wall / cold.wall:.3f}",
        f"warm-years / cold, compile:      {compile_ratio:.3f}",
        f"add-platform / cold, end to end: {platform.wall / cold.wall:.3f}",
        f"identical rebuild:               {identical.wall:.2f}s",
        f"fixed costs of warm-years (total - compile): {fixed:.2f}s",
    ]
    warm_ratio = warm.wall / cold.wall
    goals = [
        (f"warm rebuild with other years <= {WARM_RATIO_GOAL}x cold, end to end "
         f"({warm_ratio:.3f})", warm_ratio <= WARM_RATIO_GOAL),
        (f"identical rebuild <= {IDENTICAL_GOAL:.0f}s ({identical.wall:.2f}s)",
         identical.wall <= IDENTICAL_GOAL),
        (f"fixed costs of a warm build <= {FIXED_COSTS_GOAL:.0f}s ({fixed:.2f}s)",
         fixed <= FIXED_COSTS_GOAL),
    ]
    lines += [verdict(text, ok) for text, ok in goals]
    return "\n".join(lines), all(ok for _, ok in goals)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", help="git URL or path (default: a fresh stand-in repository)")
    parser.add_argument("--version", default=standin.DEMO_TAG, help="the tag to build")
    parser.add_argument("--years", type=int, default=10, help="years of the cold build")
    parser.add_argument("--go-version", default="", help="passed to invoke build")
    parser.add_argument("--image", default="", help="passed to invoke build")
    parser.add_argument("--add-platform", default="linux/arm64",
                        help="the platform the third build adds")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 even when a goal fails")
    args = parser.parse_args(argv)
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in
             (("go_version", args.go_version), ("image", args.image)) if v]
    tag = args.version
    with tempfile.TemporaryDirectory(prefix="longcert-bench-") as name, \
            fresh_volumes(2) as (build_volume, module_volume):
        tmp = Path(name)
        repo = args.repo or str(standin.make_standin_repo(tmp / "kubernetes", [tag]))
        cache = tmp / "cache"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCERT_")}
        env.update({"LONGCERT_CACHE_DIR": str(cache), "LONGCERT_BUILDS_DIR": str(tmp / "builds"),
                    "LONGCERT_REPO": repo, "LONGCERT_BUILD_CACHE_VOLUME": build_volume,
                    "LONGCERT_MODULE_CACHE_VOLUME": module_volume})
        years, other = args.years, args.years + 10
        both = f"linux/amd64,{args.add_platform}"
        plan = [("cold", years, "linux/amd64"), ("warm-years", other, "linux/amd64"),
                ("add-platform", other, both), ("identical", other, both)]
        runs: list[Run] = []
        for label, run_years, platforms in plan:
            try:
                runs.append(timed_build(label, tag, run_years, platforms, extra, env, cache, tmp))
            except SystemExit:
                if runs:
                    print(table(runs), file=sys.stderr)
                raise
            print(f"  {label}: {runs[-1].wall:.1f}s", file=sys.stderr, flush=True)
    text, ok = report(tag, runs)
    print(text)
    return 0 if ok or args.no_fail else 1


if __name__ == "__main__":
    sys.exit(main())
