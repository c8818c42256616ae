"""Benchmark: an identical `invoke build` is answered from the existing build, like `make`.

Runs the whole pipeline once on a stand-in tag with a fresh build-cache volume (cold: fetch,
patch, compile, verify, package), then the very same build again, which finds builds/<id> with
the same inputs, re-checks every sha256 and verification, and does nothing else. Prints both
wall times and the ratio identical/cold.

    python benchmarks/identical_rebuild.py [TAG]
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


def timed_build(tag: str, repo: Path, tmp: Path, volume: str) -> float:
    conf = settings.load({"repo": str(repo), "cache_dir": str(tmp / "cache"),
                          "builds_dir": str(tmp / "builds"), "build_cache_volume": volume},
                         environ={})
    started = time.monotonic()
    pipeline.run(tag, conf, Reporter(quiet=True))
    return time.monotonic() - started


def main() -> None:
    tag = sys.argv[1] if len(sys.argv) > 1 else standin.DEMO_TAG
    with standin_with_volume(tag) as (tmp, repo, volume):
        cold = timed_build(tag, repo, tmp, volume)
        identical = timed_build(tag, repo, tmp, volume)
    print(f"{tag}: cold build {cold:.1f}s, identical rebuild {identical:.2f}s, "
          f"ratio identical/cold {identical / cold:.3f}")


if __name__ == "__main__":
    main()
