"""``python tools/sync_notebooks.py`` writes only the repository's own files."""

import shutil
from pathlib import Path

import pytest

from tools.sync_notebooks import NOTEBOOKS, badge_table, sync_badges

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def repo(tmp_path):
    """A copy of what the helper reads and writes, with the badge table out of date."""
    copy = tmp_path / "repo"
    (copy / "notebooks").mkdir(parents=True)
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, copy / "notebooks" / name)
    shutil.copy(ROOT / "README.md", copy / "README.md")
    return copy


@pytest.mark.parametrize("target", ["colab_badge.md", "README.md",
                                    "notebooks/01_linear_regression.ipynb"])
def test_a_symlinked_file_is_refused_and_its_target_left_alone(repo, tmp_path, target):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not yours")
    path = repo / target
    if path.exists():
        outside.write_text(path.read_text().replace("colab", "COLAB"))  # so a sync would write
        path.unlink()
    before = outside.read_text()
    path.symlink_to(outside)
    with pytest.raises(ValueError, match="is a symbolic link or lies outside"):
        sync_badges(repo)
    assert outside.read_text() == before and path.is_symlink()


def test_a_symlinked_folder_is_refused(repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(repo / "notebooks", elsewhere)
    (repo / "notebooks").symlink_to(elsewhere)
    (elsewhere / "01_linear_regression.ipynb").write_text(
        (elsewhere / "01_linear_regression.ipynb").read_text().replace("colab", "COLAB"))
    before = (elsewhere / "01_linear_regression.ipynb").read_text()
    with pytest.raises(ValueError, match="lies outside"):
        sync_badges(repo)
    assert (elsewhere / "01_linear_regression.ipynb").read_text() == before


def test_plain_files_are_synced_in_place(repo):
    changed = sync_badges(repo)
    assert repo / "colab_badge.md" in changed
    assert (repo / "colab_badge.md").read_text() == badge_table()
    assert sync_badges(repo) == []
    assert not [p for p in repo.rglob("*") if p.name.startswith(".")]  # no temporary files
