"""The live panel in a real kernel, clicked through the kernel's channels as a page clicks it.

Two kernels: this environment's (ipywidgets 8, the newest ipykernel) and the Colab
emulation (ipywidgets 7.7.1, ipykernel 6.17.1, widget messages from other threads
dropped). An update counts only if it arrived while the kernel was handling a message
from the page, as Colab requires (tests/widget_frontend.py).
"""

import pytest
from widget_frontend import Frontend

pytestmark = [pytest.mark.model, pytest.mark.slow]

PANEL = """
from llm_optimizer import load_model, make_dataset
from llm_optimizer.widgets import optimizer_panel
panel = optimizer_panel(make_dataset("article"), load_model("smollm2"), stop=[], steps=3,
                        proposals_per_step=2, seed=4)
c = panel.controls
display(panel)
print(*(c[k].model_id for k in ("run", "stop", "status", "picture", "steps")))
"""


@pytest.fixture(params=["this environment",
                        pytest.param("Colab emulation", marks=pytest.mark.colab)])
def frontend(request, monkeypatch):
    if request.param == "Colab emulation":
        colab = request.getfixturevalue("colab")
        monkeypatch.setenv("JUPYTER_PATH", colab.jupyter_path)
        page = Frontend(colab.kernel_name)
    else:
        page = Frontend("python3")
    yield page
    page.close()


def _ended(values: list[str]) -> bool:
    return any(v.startswith(("finished", "stopped", "error")) for v in values)


def test_the_panel_updates_after_every_step_and_stops_on_a_click(frontend):
    run, stop, status, picture, steps = frontend.execute(PANEL, timeout=600).split()
    frontend.click(run)
    frontend.wait_until(lambda: _ended(frontend.delivered(status, "value")), timeout=600)
    statuses = frontend.delivered(status, "value")
    assert [s.split(" · ")[0] for s in statuses] == [
        "starting...", "step 1 of 3", "step 2 of 3", "finished: 3 steps done"]
    assert statuses[-1].endswith("seed 4")
    pictures = frontend.delivered(picture, "value")
    assert len(pictures) == 3 and all(p[:4] == b"\x89PNG" for p in pictures)
    assert not [u for u in frontend.updates if not u.delivered]

    frontend.set_value(steps, 50)  # a learner moves the slider, then runs again
    frontend.click(run)
    frontend.wait_until(lambda: frontend.delivered(status, "value")[-1].startswith("step 2 "),
                        timeout=600)
    frontend.click(stop)  # read before the next step
    frontend.wait_until(lambda: _ended(frontend.delivered(status, "value")[4:]), timeout=600)
    last = frontend.delivered(status, "value")[-1]
    assert last.startswith("stopped after step 2 of 50") and last.endswith("seed 5")
    summary = frontend.execute("r = panel.controller.run\n"
                               "print(r.steps_done, r.stop_reason, len(r.history))")
    assert summary.split() == ["2", "stopped", str(1 + 2 * 2)]
    assert not [u for u in frontend.updates if not u.delivered]
    assert frontend.execute("print('a cell runs after the panel')").strip()
