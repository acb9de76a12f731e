"""Draw the README's pictures from the committed demo run with today's plotting code.

Run ``python -m tools.readme_picture`` (or ``python tools/readme_picture.py``) after
changing ``llm_optimizer/plots.py`` or ``llm_optimizer/animation.py``. It reads
``docs/demo_run/`` (settings.json and steps.jsonl of a real ``make demo`` run of the bundled
model) and writes ``docs/images/demo_run.png`` (``plot_run``) and ``docs/images/demo_run.gif``
(``animate_run``). Each picture carries a digest of the plotting code that drew it (a PNG
text chunk, a GIF comment), so ``tests/test_readme_picture.py`` fails when the pictures were
drawn by other plotting code than the repository's.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = Path("docs/demo_run")
PNG, GIF = Path("docs/images/demo_run.png"), Path("docs/images/demo_run.gif")
PLOTTING = ("llm_optimizer/plots.py", "llm_optimizer/animation.py")
KEY = "plotting-digest"
DPI = 110  # as the command line's run.png


def plotting_digest(root: Path = ROOT) -> str:
    """A digest of the plotting modules' source under ``root``."""
    digest = hashlib.sha256()
    for name in PLOTTING:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def draw(run_folder: Path = ROOT / RUN, png: Path = ROOT / PNG, gif: Path = ROOT / GIF) -> str:
    """Draw both pictures of the run in ``run_folder``; return the digest they carry."""
    import matplotlib

    matplotlib.use("Agg")
    from llm_optimizer import Run, make_dataset
    from llm_optimizer.animation import animate_run, gif_bytes
    from llm_optimizer.plots import plot_run
    from llm_optimizer.settings import dataset_identity

    run = Run.load(run_folder)
    settings = run.settings
    dataset = make_dataset(settings["dataset"], seed=settings["data_seed"])
    if dataset_identity(dataset)["data_digest"] != settings["data_digest"]:
        raise ValueError(f"{run_folder} was run on other data than make_dataset"
                         f"({settings['dataset']!r}, seed={settings['data_seed']}) gives")
    digest = plotting_digest()
    picture = io.BytesIO()
    plot_run(run, dataset).savefig(picture, format="png", dpi=DPI, metadata={KEY: digest})
    png.write_bytes(picture.getvalue())
    gif.write_bytes(gif_bytes(animate_run(run, dataset), comment=f"{KEY} {digest}"))
    return digest


def main() -> int:
    digest = draw()
    print(f"wrote {PNG} and {GIF} (plotting code {digest})")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
