"""The live panel, driven from Python as a user would click it."""

import time

import pytest

from llm_optimizer import make_dataset
from llm_optimizer.widgets import PanelController, optimizer_panel

pytestmark = pytest.mark.model


def _wait(condition, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_sliders_and_run_button_start_a_run_with_those_settings(smollm2):
    panel = optimizer_panel(make_dataset("article"), smollm2, stop=[], seed=1)
    c = panel.controls
    c["temperature"].value, c["steps"].value, c["proposals"].value = 0.5, 2, 3
    before = (c["picture"].value, c["status"].value)
    c["run"].click()
    assert c["run"].disabled and not c["stop"].disabled
    panel.controller.join(timeout=120)
    run = panel.controller.run
    assert run.settings["temperature"] == 0.5
    assert run.settings["steps"] == 2 and run.settings["proposals_per_step"] == 3
    assert run.steps_done == 2 and len(run.history) == 1 + 2 * 3
    _wait(lambda: not c["run"].disabled)
    assert c["stop"].disabled
    assert c["picture"].value != before[0] and c["picture"].value[:4] == b"\x89PNG"
    assert c["status"].value != before[1] and "stopped: step limit" in c["status"].value


def test_stop_button_ends_the_run_and_keeps_it(smollm2):
    panel = optimizer_panel(make_dataset("article"), smollm2, stop=[], seed=2)
    c = panel.controls
    c["steps"].value, c["proposals"].value = 100, 2
    c["run"].click()
    _wait(lambda: panel.controller.run is not None and panel.controller.run.steps_done >= 1)
    c["stop"].click()
    panel.controller.join(timeout=120)
    run = panel.controller.run
    assert run.stop_reason == "stopped" and 1 <= run.steps_done < 100
    assert len(run.history) == 1 + 2 * run.steps_done
    _wait(lambda: not c["run"].disabled)
    assert "stopped: stopped" in c["status"].value


def test_controller_checks_settings_and_refuses_a_second_run(smollm2):
    controller = PanelController(make_dataset("article"), smollm2, stop=[])
    with pytest.raises(ValueError, match="temperature"):
        controller.start(temperature=0, steps=1, proposals_per_step=1)
    with pytest.raises(ValueError, match="steps"):
        controller.start(temperature=1, steps=0, proposals_per_step=1)
    controller.start(temperature=1.0, steps=30, proposals_per_step=1)
    with pytest.raises(RuntimeError, match="in progress"):
        controller.start(temperature=1.0, steps=1, proposals_per_step=1)
    controller.stop()
    controller.join(timeout=120)
    assert controller.run.stop_reason == "stopped"


def test_an_error_inside_the_run_is_shown_not_lost(smollm2):
    panel = optimizer_panel(make_dataset("article"), smollm2, init=[("x", 1)])
    panel.controls["run"].click()
    panel.controller.join(timeout=60)
    _wait(lambda: not panel.controls["run"].disabled)
    assert "error: init must be" in panel.controls["status"].value
