"""The README's pictures are drawn from the committed demo run by today's plotting code."""

import shutil
from pathlib import Path

from PIL import Image

from tools.readme_picture import GIF, KEY, PLOTTING, PNG, ROOT, RUN, draw, plotting_digest


def test_the_readme_pictures_were_drawn_by_the_plotting_code_of_this_commit():
    digest = plotting_digest()
    with Image.open(ROOT / PNG) as png:
        assert png.text.get(KEY) == digest, (
            "docs/images/demo_run.png was drawn by other plotting code: "
            "run python -m tools.readme_picture")
    with Image.open(ROOT / GIF) as gif:
        assert gif.info.get("comment") == f"{KEY} {digest}".encode(), (
            "docs/images/demo_run.gif was drawn by other plotting code: "
            "run python -m tools.readme_picture")
    readme = (ROOT / "README.md").read_text()
    assert f"]({PNG})" in readme and f"]({GIF})" in readme


def test_the_digest_changes_with_the_plotting_code(tmp_path):
    for name in PLOTTING:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    assert plotting_digest(tmp_path) == plotting_digest()
    with (tmp_path / PLOTTING[-1]).open("a") as source:
        source.write("\n# a change\n")
    assert plotting_digest(tmp_path) != plotting_digest()


def test_the_script_draws_both_pictures_from_a_run_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ROOT / RUN / "settings.json", run)
    lines = (ROOT / RUN / "steps.jsonl").read_text().splitlines(keepends=True)
    (run / "steps.jsonl").write_text("".join(lines[:3]))  # the start and two steps
    digest = draw(run, tmp_path / "run.png", tmp_path / "run.gif")
    with Image.open(tmp_path / "run.png") as png:
        assert png.text[KEY] == digest
    with Image.open(tmp_path / "run.gif") as gif:
        assert gif.n_frames == 2 and gif.info["comment"] == f"{KEY} {digest}".encode()
    assert Path(tmp_path / "run.png").stat().st_size > 10_000


def test_the_readme_states_the_committed_demo_runs_own_figures():
    from llm_optimizer import Run

    run = Run.load(ROOT / RUN)
    replies = run.history[run.history["step"] > 0]
    parsed = int(replies["parsed"].sum())
    timed = [r["seconds"] for r in run.records if "seconds" in r]
    seconds = sum(timed) / len(timed)
    best, exact = run.best, run.settings["least_squares"]
    readme = (ROOT / "README.md").read_text()
    for figure in (f"best MSE {best.loss:.2f} at w = {best.w:.2f}, b = {best.b:.2f}",
                   f"least squares: MSE {exact['loss']:.2f}",
                   f"| {parsed} of {len(replies)} ({parsed / len(replies):.0%})",
                   f"| {seconds:.2f} s |"):
        assert figure.replace("-", "−") in readme or figure in readme, (
            f"README.md should say {figure!r}, as the run in {RUN} does")
