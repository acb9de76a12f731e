"""The live panel, driven from Python as a page would drive it.

In a notebook, the page copies every ``tick`` the kernel sends to ``tock`` (a ``jsdlink``)
and sends it back, which runs the next step; ``_echo`` plays that part here. The same
panel is driven through a real kernel in tests/test_panel_kernel.py.
"""

import threading

import pytest

from llm_optimizer import make_dataset
from llm_optimizer.widgets import PanelController, optimizer_panel

pytestmark = pytest.mark.model


def _echo(panel, *, stop_after: int | None = None, limit: int = 200) -> None:
    """Answer each tick with a tock, as the page does, until the run ends; click Stop
    after ``stop_after`` steps."""
    c = panel.controls
    for _ in range(limit):
        if not panel.controller.running:
            return
        if stop_after is not None and panel.controller.run.steps_done >= stop_after:
            c["stop"].click()
            continue
        c["tock"].value = c["tick"].value
    raise AssertionError("the run did not end")


class Scripted:
    """A stand-in model with fixed replies, for the panel's bookkeeping."""

    name, reply_tokens = "scripted", 16

    def __init__(self, reply="[2, 1]", fail_at=None):
        self.reply, self.fail_at, self.calls = reply, fail_at, 0

    def generate(self, prompt, *, n, temperature, max_new_tokens, seed=None):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the model fell over")
        return [self.reply] * n


def test_sliders_and_run_button_start_a_run_with_those_settings(smollm2):
    panel = optimizer_panel(make_dataset("article"), smollm2, stop=[], seed=1)
    c = panel.controls
    assert c["picture"].layout.display == "none" and not c["picture"].value  # no empty picture
    c["temperature"].value, c["steps"].value, c["proposals"].value = 0.5, 2, 3
    c["run"].click()  # runs step 1 at once
    assert panel.controller.run.steps_done == 1 and c["run"].disabled and not c["stop"].disabled
    assert c["status"].value.startswith("step 1 of 2")
    _echo(panel)
    run = panel.controller.run
    assert run.settings["temperature"] == 0.5 and run.settings["seed"] == 1
    assert run.settings["proposals_per_step"] == 3
    assert run.steps_done == 2 and len(run.history) == 1 + 2 * 3
    assert not c["run"].disabled and c["stop"].disabled
    assert c["picture"].value[:4] == b"\x89PNG" and c["picture"].layout.display is None
    assert c["status"].value.startswith("finished: 2 steps done") and "seed 1" in c["status"].value
    assert c["seed"].value == 2  # Run again samples anew


def test_the_reply_format_drop_down_constrains_the_run(smollm2):
    panel = optimizer_panel(make_dataset("article"), smollm2, stop=[], seed=2)
    c = panel.controls
    assert c["reply_format"].options == ("free", "pair", "reason+pair")
    assert c["reply_format"].value == "free"
    c["reply_format"].value, c["steps"].value, c["proposals"].value = "pair", 2, 4
    c["run"].click()
    _echo(panel)
    run = panel.controller.run
    assert run.settings["reply_format"] == "pair" and run.steps_done == 2
    assert run.history["parsed"].all()
    with pytest.raises(ValueError, match="reply_format must be one of"):
        PanelController(make_dataset("article"), smollm2).start(
            temperature=1.0, steps=1, proposals_per_step=1, reply_format="json")


def test_stop_ends_the_run_between_steps_and_keeps_it():
    panel = optimizer_panel(make_dataset("article"), Scripted(), stop=[])
    c = panel.controls
    c["steps"].value, c["proposals"].value = 100, 2
    c["run"].click()
    _echo(panel, stop_after=3)
    run = panel.controller.run
    assert run.stop_reason == "stopped" and run.steps_done == 3 and len(run.history) == 1 + 2 * 3
    assert c["status"].value.startswith("stopped after step 3 of 100")
    c["tock"].value = c["tick"].value + 1  # a tock still on its way changes nothing
    assert panel.controller.run.steps_done == 3 and not c["run"].disabled


def test_run_again_starts_a_new_run_with_the_next_seed():
    model = Scripted()
    panel = optimizer_panel(make_dataset("article"), model, stop=[], seed=5)
    c = panel.controls
    c["steps"].value = 2
    c["run"].click()
    _echo(panel)
    first = panel.controller.run
    c["run"].click()
    _echo(panel)
    second = panel.controller.run
    assert second is not first and second.settings["seed"] == 6 and second.steps_done == 2


def test_a_click_on_run_during_a_run_changes_nothing():
    panel = optimizer_panel(make_dataset("article"), Scripted(), stop=[])
    c = panel.controls
    c["steps"].value = 5
    c["run"].click()
    run, status = panel.controller.run, c["status"].value
    c["run"].click()  # the button is disabled in the page; a late click is harmless
    assert panel.controller.run is run and run.steps_done == 1 and c["status"].value == status


@pytest.mark.parametrize(("options", "model", "message"), [
    ({"init": [("x", 1)]}, Scripted(), "error: ValueError: init must be"),
    ({}, Scripted(fail_at=2), "error: model error: RuntimeError: the model fell over"),
])
def test_an_error_inside_the_run_is_shown_in_the_panel(options, model, message):
    panel = optimizer_panel(make_dataset("article"), model, stop=[], **options)
    c = panel.controls
    c["steps"].value = 5
    c["run"].click()
    _echo(panel)
    assert c["status"].value.startswith(message)
    assert not c["run"].disabled and c["stop"].disabled


def test_labels_are_readable():
    panel = optimizer_panel(make_dataset("article"), Scripted())
    for name in ("temperature", "steps", "proposals", "seed"):
        assert panel.controls[name].style.description_width == "initial"
    assert panel.controls["proposals"].description == "proposals per step"


def test_controller_checks_settings_and_starts_one_run_at_a_time():
    controller = PanelController(make_dataset("article"), Scripted(), stop=[])
    with pytest.raises(ValueError, match="temperature"):
        controller.start(temperature=0, steps=1, proposals_per_step=1)
    with pytest.raises(ValueError, match="steps"):
        controller.start(temperature=1, steps=0, proposals_per_step=1)
    assert not controller.running
    barrier, results = threading.Barrier(8), []

    def start():
        barrier.wait()
        results.append(controller.start(temperature=1.0, steps=3, proposals_per_step=1))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    while controller.advance():
        pass
    assert controller.run.steps_done == 3 and controller.run.stop_reason == "step limit"


def test_stop_during_a_step_ends_the_run_after_it():
    class StopsItself(Scripted):
        def generate(self, prompt, **kwargs):
            if self.calls == 1:
                controller.stop()  # as a Stop from elsewhere while this step runs
            return super().generate(prompt, **kwargs)

    controller = PanelController(make_dataset("article"), StopsItself(), stop=[])
    controller.start(temperature=1.0, steps=10, proposals_per_step=1)
    assert controller.advance() is True
    assert controller.advance() is False
    assert controller.run.steps_done == 2 and controller.run.stop_reason == "stopped"


def test_a_step_that_raises_ends_the_run_with_an_error_reason_not_running():
    class Renamed(Scripted):  # a model that changes under the run: its next step is refused
        def generate(self, prompt, **kwargs):
            self.name = f"model {self.calls + 1}"
            return super().generate(prompt, **kwargs)

    controller = PanelController(make_dataset("article"), Renamed(), stop=[])
    controller.start(temperature=1.0, steps=5, proposals_per_step=1)
    assert controller.advance() is True
    assert controller.advance() is False and not controller.running
    assert controller.run.stop_reason.startswith("error: ValueError: resume continues")
    assert controller.status().startswith("error: ValueError")


def test_steps_asked_for_from_several_threads_run_one_at_a_time():
    class Slow(Scripted):
        active = peak = 0

        def generate(self, prompt, **kwargs):
            Slow.active += 1
            Slow.peak = max(Slow.peak, Slow.active)
            threading.Event().wait(0.02)
            Slow.active -= 1
            return super().generate(prompt, **kwargs)

    controller = PanelController(make_dataset("article"), Slow(), stop=[])
    controller.start(temperature=1.0, steps=6, proposals_per_step=1)
    threads = [threading.Thread(target=controller.advance) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run = controller.run
    assert Slow.peak == 1 and run.steps_done == 6
    assert [r["step"] for r in run.records] == list(range(7))


def test_a_panel_with_an_out_dir_journals_every_step(tmp_path):
    from llm_optimizer import Run

    controller = PanelController(make_dataset("article"), Scripted(), stop=[],
                                 out_dir=tmp_path / "run")
    controller.start(temperature=1.0, steps=3, proposals_per_step=2)
    while controller.advance():
        pass
    assert Run.load(tmp_path / "run").history.equals(controller.run.history)
