"""`invoke demo`: the whole pipeline, offline, on the bundled stand-in Kubernetes tree.

The stand-in generator lives with the tests (tests/fixtures/standin.py) because the tests use the
same trees; the demo needs a checkout of this repository: the one longcert runs from (`pip
install -e .`), or the working directory (`pipx install .` then `longcert demo` in the clone).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from longcert import builder, container, pipeline, settings
from longcert.errors import ConfigError
from longcert.progress import Reporter

DEMO_GO = "1.24.11"


def checkout() -> Path | None:
    """The longcert checkout whose tests/fixtures the demo uses: the one this package runs
    from, else the working directory or one of its parents (a wheel or pipx install run
    inside a clone)."""
    here = Path.cwd().resolve()
    for root in (settings.PROJECT_ROOT, here, *here.parents):
        if root is not None and (root / "tests" / "fixtures" / "standin.py").is_file() and (
            root / "patches"
        ).is_dir():
            return root
    return None


def run() -> pipeline.PipelineResult:
    """Make the stand-in repo, the builder image if missing, then build and verify kubeadm."""
    root = checkout()
    if root is None:
        raise ConfigError(
            "the demo builds the stand-in Kubernetes tree that lives with longcert's tests, "
            "which an installed wheel does not carry",
            "run it from a checkout: git clone the longcert repository and run `longcert "
            "demo` inside it",
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from tests.fixtures import standin

    reporter = Reporter()
    conf = settings.load({})
    demo_repo = conf.cache_dir / "demo" / "kubernetes"
    shutil.rmtree(demo_repo, ignore_errors=True)  # ours: regenerated (deterministically) each run
    repo = standin.make_standin_repo(demo_repo, [standin.DEMO_TAG])
    reporter.say(f"stand-in Kubernetes repository: {repo} (tag {standin.DEMO_TAG})")
    client = container.connect()
    if container.image_id(client, f"golang:{DEMO_GO}") is None:
        reporter.say(f"building the builder image golang:{DEMO_GO} (once)")
        builder.build_image(DEMO_GO, None, None, builder.DebianSource(), reporter.step)
    conf = settings.load(
        {
            "repo": str(repo),
            "years": 10,
            "builds_dir": str(conf.builds_dir / "demo"),
            "force": True,  # the demo's own output, in its own directory
        }
    )
    result = pipeline.run(standin.DEMO_TAG, conf, reporter)
    assert result.output is not None
    reporter.summary(
        f"demo built {result.output.path}",
        pipeline.summary_rows(result),
        ["artifact", "size", "sha256", "verified"],
    )
    return result
