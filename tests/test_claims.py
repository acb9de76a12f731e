"""docs/claims.md stays in step with the notebooks: every claim it lists is still said where
it says, and what backs it still exists."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROW = re.compile(r"^\| (\d\d) \| (.+?) \| (.+?) \|$")


def _claims() -> list[tuple[str, str, str]]:
    rows = [ROW.match(line) for line in (ROOT / "docs" / "claims.md").read_text().splitlines()]
    return [m.groups() for m in rows if m]


def _notebook(number: str) -> dict:
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    return json.loads(path.read_text())


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_every_notebook_has_its_claims_listed():
    numbers = {number for number, _, _ in _claims()}
    lectures = (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")  # the solutions only compute
    assert numbers == {p.name[:2] for p in lectures}


@pytest.mark.parametrize(("number", "claim", "backing"), _claims(), ids=lambda v: v[:40])
def test_a_listed_claim_is_in_its_notebook_and_its_backing_exists(number, claim, backing):
    book = _notebook(number)
    prose = _flat(" ".join("".join(c["source"]) for c in book["cells"]
                          if c["cell_type"] == "markdown"))
    quoted = claim.strip().strip("“”\"")
    assert _flat(quoted) in prose, f"not said in notebook {number}: {quoted}"
    cells = {c["id"]: c for c in book["cells"]}
    cited = re.findall(r"cell `([0-9a-f]{8})`", backing)
    for cell_id in cited:
        assert cell_id in cells and cells[cell_id]["cell_type"] == "code", cell_id
    files = re.findall(r"`((?:docs|benchmarks|llm_optimizer|tests)/[^`]+)`", backing)
    for name in files:
        assert (ROOT / name).is_file(), name
    assert cited or files or "https://" in backing, f"nothing backs: {claim}"
