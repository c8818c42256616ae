"""Benchmark: how much the Go build-cache volume saves on a rebuild.

Builds one stand-in tag twice through the real pipeline (compile stage only): first with a
fresh, empty build-cache volume (cold), then with different --years on the same volume (warm, as
a user's second build is). Prints the wall times and the warm/cold ratio.

    python benchmarks/rebuild_cache.py [TAG]
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

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
    volume = f"longcert-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        repo = standin.make_standin_repo(Path(tmp) / "k8s", [tag])
        try:
            cold = timed_compile(tag, 10, repo, Path(tmp) / "cache", volume)
            warm = timed_compile(tag, 20, repo, Path(tmp) / "cache", volume)
        finally:
            docker.from_env().volumes.get(volume).remove(force=True)
    print(f"{tag}: cold compile {cold:.1f}s, warm rebuild after a patch change {warm:.1f}s, "
          f"ratio warm/cold {warm / cold:.2f}")


if __name__ == "__main__":
    main()
