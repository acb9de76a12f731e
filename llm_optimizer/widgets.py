"""A live panel for the optimization loop: sliders, run and stop buttons, a picture.

The logic lives in :class:`PanelController` (plain Python, testable without a
browser); :func:`optimizer_panel` only wires ipywidgets to it.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable

import matplotlib

from . import _checks
from .data import Dataset
from .loop import Run, optimize


class PanelController:
    """Runs ``optimize`` in a background thread so that a notebook stays responsive.

    ``on_update(run)`` is called after every step with the run so far; ``stop()``
    ends the run after the step in progress and keeps everything evaluated.
    """

    def __init__(self, dataset: Dataset, model, *,
                 on_update: Callable[[Run], None] | None = None, **options):
        self.dataset, self.model, self.options = dataset, model, options
        self.on_update = on_update
        self.run: Run | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, *, temperature: float, steps: int, proposals_per_step: int) -> None:
        """Start a new run with these settings (checked here, before the thread starts)."""
        if self.running:
            raise RuntimeError("a run is in progress; stop it first")
        settings = {"temperature": _checks.positive("temperature", temperature),
                    "steps": _checks.at_least("steps", steps, 1),
                    "proposals_per_step": _checks.at_least(
                        "proposals_per_step", proposals_per_step, 1)}
        self._stop.clear()
        self.run, self.error = None, None
        self._thread = threading.Thread(target=self._work, args=(settings,), daemon=True)
        self._thread.start()

    def _work(self, settings: dict) -> None:
        try:
            self.run = optimize(self.dataset, self.model, **settings, **self.options,
                                on_step=self._step)
            if self.on_update is not None:
                self.on_update(self.run)
        except Exception as error:  # shown in the panel; a thread has no one to raise to
            self.error = error

    def _step(self, run: Run) -> bool:
        self.run = run
        if self.on_update is not None:
            self.on_update(run)
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the run to end after the step in progress."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the run to end."""
        if self._thread is not None:
            self._thread.join(timeout)


def render_png(run: Run, dataset: Dataset) -> bytes:
    """The run's three-panel figure as PNG bytes."""
    from matplotlib.figure import Figure

    from .plots import plot_run

    with matplotlib.rc_context({"figure.max_open_warning": 0}):
        figure = plot_run(run, dataset, figure=Figure(figsize=(15, 4.2)))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


def optimizer_panel(dataset: Dataset, model, **options):
    """Sliders for temperature, iterations and proposals per step, run and stop
    buttons, a status line and a picture that updates after every step.

    Returns the ipywidgets box; its ``controller`` attribute is the
    :class:`PanelController` behind it.
    """
    import ipywidgets as w

    temperature = w.FloatSlider(value=dataset.setup.temperature, min=0.1, max=2.0, step=0.1,
                                description="temperature")
    steps = w.IntSlider(value=10, min=1, max=100, description="iterations")
    proposals = w.IntSlider(value=8, min=1, max=16, description="proposals/step")
    run_button = w.Button(description="Run", button_style="success", icon="play")
    stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                           disabled=True)
    status = w.HTML("Set the sliders and press Run.")
    picture = w.Image(format="png")

    def update(run: Run) -> None:
        picture.value = render_png(run, dataset)
        status.value = run.summary()

    controller = PanelController(dataset, model, on_update=update, **options)

    def on_run(_button) -> None:
        run_button.disabled, stop_button.disabled = True, False
        status.value = "running..."
        controller.start(temperature=temperature.value, steps=steps.value,
                         proposals_per_step=proposals.value)
        threading.Thread(target=finish, daemon=True).start()

    def finish() -> None:
        controller.join()
        if controller.error is not None:
            status.value = f"error: {controller.error}"
        run_button.disabled, stop_button.disabled = False, True

    run_button.on_click(on_run)
    stop_button.on_click(lambda _button: controller.stop())
    panel = w.VBox([w.HBox([temperature, steps, proposals]), w.HBox([run_button, stop_button]),
                    status, picture])
    panel.controller = controller
    panel.controls = {"temperature": temperature, "steps": steps, "proposals": proposals,
                      "run": run_button, "stop": stop_button, "status": status,
                      "picture": picture}
    return panel
