"""Benchmark: how much the Go build-cache volume saves on a rebuild.

Builds one stand-in tag twice through the real pipeline (compile stage only): first with a
fresh, empty build-cache volume (cold), then with different --years on the same volume (warm, as
a user's second build is). Prints the wall times and the warm/cold ratio.

    python benchmarks/rebuild_cache.py [TAG]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import standin_with_volume  # noqa: E402
from longcert import pipeline, settings  # noqa: E402
from longcert.progress import Reporter  # noqa: E402
from tests.fixtures import standin  # noqa: E402


def timed_compile(tag: str, years: int, repo: Path, cache: Path, volume: str) -> float:
    conf = settings.load({"repo": str(repo), "years": str(years), "cache_dir": str(cache),
                          "build_cache_volume": volume, "go_version": "1.24.11"}, environ={})
    started = time.monotonic()
    pipeline.run(tag, conf, Reporter(quiet=True), until="compile")
    return time.monotonic() - started


def main() -> None:
    tag = sys.argv[1] if len(sys.argv) > 1 else standin.DEMO_TAG
    with standin_with_volume(tag) as (tmp, repo, volume):
        cold = timed_compile(tag, 10, repo, tmp / "cache", volume)
        warm = timed_compile(tag, 20, repo, tmp / "cache", volume)
    print(f"{tag}: cold compile {cold:.1f}s, warm rebuild after a patch change {warm:.1f}s, "
          f"ratio warm/cold {warm / cold:.2f}")


if __name__ == "__main__":
    main()
