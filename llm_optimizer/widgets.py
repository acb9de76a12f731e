"""A live panel for the optimization loop: sliders, a seed, Run and Stop, a status line, a picture.

Why the panel is built this way. A notebook front end shows widget updates that the
kernel sends while it handles a message from that front end; Colab shows nothing else:
updates sent from a background thread, or while the kernel is idle, never reach the page
there (googlecolab/colabtools#3373). And while the kernel's main thread is busy, it reads
no messages, so a Stop click waits until it is free. So the panel runs **one optimization
step per message**: the Run click runs step 1; at the end of every step the kernel bumps a
hidden counter, ``tick``, and a link that lives in the page (``jsdlink``) copies it to a
second hidden counter, ``tock``, which the page sends back; that message runs the next
step. Every update is sent from the kernel's main thread while it handles a front-end
message, and a Stop click, queued behind the step in progress, is read before the next
one. Only core ipywidgets parts are used, so it works with ipywidgets 7.7 (Colab) and 8.

The logic lives in :class:`PanelController` (plain Python, testable without a page);
:func:`optimizer_panel` wires the widgets to it.
"""

from __future__ import annotations

import html
import io
import threading
from typing import Any

import matplotlib

from . import _checks
from .data import Dataset
from .grammar import REPLY_FORMATS, check_format
from .loop import optimize
from .models.base import TEMPERATURE_RANGE
from .run import Run

MAX_SEED = 2**31 - 1


class PanelController:
    """A run that advances one step per call to :meth:`advance`.

    :meth:`start` checks the settings and claims the controller (atomically: a second
    start while a run is going returns False and changes nothing); :meth:`advance` runs
    the next step and says whether there is another; :meth:`stop` ends the run after the
    step in progress, keeping everything evaluated. ``options`` go to ``optimize``.
    """

    def __init__(self, dataset: Dataset, model, **options: Any):
        self.dataset, self.model, self.options = dataset, model, options
        self.run: Run | None = None
        self.error: str | None = None
        self.settings: dict[str, Any] = {}
        self.stop_requested = False
        self._lock, self._step_lock = threading.Lock(), threading.Lock()
        self._running = self._stepping = False

    @property
    def running(self) -> bool:
        """Whether a run has started and not ended."""
        return self._running

    def start(self, *, temperature: float, steps: int, proposals_per_step: int,
              seed: int = 0, reply_format: str = "free") -> bool:
        """Claim the controller for a new run with these settings; False if one is going.

        Raises ``ValueError`` naming a bad setting (nothing is claimed then).
        """
        settings = {"temperature": _checks.between("temperature", temperature,
                                                   *TEMPERATURE_RANGE),
                    "steps": _checks.at_least("steps", steps, 1),
                    "proposals_per_step": _checks.at_least(
                        "proposals_per_step", proposals_per_step, 1),
                    "seed": _checks.at_least("seed", seed, 0),
                    "reply_format": check_format(reply_format)}
        with self._lock:  # check and claim in one step: two starts never both succeed
            if self._running:
                return False
            self._running = True
            self.settings, self.run, self.error, self.stop_requested = settings, None, None, False
        return True

    def advance(self) -> bool:
        """Run the next step; return True if the run goes on after it.

        A stop rule, the step limit, a Stop request, a model error or an exception
        ends the run; an exception is kept in ``error``, not raised.
        """
        with self._step_lock:  # one step at a time, whoever calls
            return self._advance()

    def _advance(self) -> bool:
        if not self._running:
            return False
        self._stepping = True
        try:
            if self.run is None:
                settings = {k: v for k, v in self.settings.items() if k != "steps"}
                self.run = optimize(self.dataset, self.model, steps=1, **settings,
                                    **self.options)
            else:
                self.run = optimize(self.dataset, self.model, steps=self.run.steps_done + 1,
                                    resume=self.run, out_dir=self.options.get("out_dir"))
        except Exception as error:  # shown in the panel's status line, not lost in a log
            self.error = f"{type(error).__name__}: {error}"
            return self._end(f"error: {self.error}")
        finally:
            self._stepping = False
        reason = self.run.stop_reason
        if reason.startswith("model error"):
            self.error = reason
            return self._end(reason)
        if reason != "step limit":
            return self._end(reason)
        if self.run.steps_done >= self.settings["steps"]:
            return self._end("step limit")
        if self.stop_requested:
            return self._end("stopped")
        return True

    def stop(self) -> None:
        """End the run: at once between steps, else after the step in progress."""
        if self._stepping:
            self.stop_requested = True
        elif self._running:
            self._end("stopped")

    def _end(self, reason: str | None) -> bool:
        if self.run is not None and reason is not None:
            self.run.stop_reason = reason
        self._running = False
        return False

    def status(self) -> str:
        """One line for the panel: what is happening or how the run ended."""
        if self.error is not None:
            return f"error: {self.error}"
        if self.run is None:
            return "starting..." if self._running else "Set the sliders and press Run."
        run, total = self.run, self.settings["steps"]
        scored = run.scored
        if len(scored):
            best = run.best
            result = f"best loss {best.loss:.4g} at w = {best.w:g}, b = {best.b:g}"
        else:
            result = "no proposal scored yet"
        replies = int((run.history["step"] > 0).sum())
        parsed = f"{replies - run.n_failed} of {replies} replies parsed"
        seed = f"seed {self.settings['seed']}"
        if self._running:
            head = f"step {run.steps_done} of {total}"
            if self.stop_requested:
                head += ", stopping after this step"
        elif run.stop_reason == "stopped":
            head = f"stopped after step {run.steps_done} of {total}"
        elif run.stop_reason == "step limit":
            head = f"finished: {total} steps done"
        else:
            head = f"finished after step {run.steps_done}: {run.stop_reason}"
        parts = [head, result, parsed, seed]
        if run.settings.get("reply_format_fallback"):
            parts.append(run.settings["reply_format_fallback"])
        return " · ".join(parts)


def render_png(run: Run, dataset: Dataset) -> bytes:
    """The run's three-panel figure as PNG bytes."""
    from matplotlib.figure import Figure

    from .plots import RUN_SIZE, plot_run

    with matplotlib.rc_context({"figure.max_open_warning": 0}):
        figure = plot_run(run, dataset, figure=Figure(figsize=RUN_SIZE))
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=72)
    return buffer.getvalue()


def optimizer_panel(dataset: Dataset, model, **options: Any):
    """Sliders for temperature, iterations and proposals per step, a seed, the reply
    format, Run and Stop buttons, a status line and a picture that updates after every
    step.

    ``options`` go to ``optimize`` (``init``, ``stop``, ``max_pairs``, ...). After each
    run the seed moves on by one, so Run again samples anew; set it to repeat a run.
    Returns the ipywidgets box; ``panel.controller`` is the :class:`PanelController`
    behind it and ``panel.controls`` its widgets by name.
    """
    import ipywidgets as w

    readable = {"description_width": "initial"}
    wide = w.Layout(width="330px")
    temperature = w.FloatSlider(value=options.pop("temperature", dataset.setup.temperature),
                                min=0.1, max=2.0, step=0.1, description="temperature",
                                style=readable, layout=wide)
    steps = w.IntSlider(value=options.pop("steps", 10), min=1, max=100,
                        description="iterations", style=readable, layout=wide)
    proposals = w.IntSlider(value=options.pop("proposals_per_step", 8), min=1, max=16,
                            description="proposals per step", style=readable, layout=wide)
    seed = w.BoundedIntText(value=options.pop("seed", 0), min=0, max=MAX_SEED,
                            description="seed", style=readable, layout=w.Layout(width="160px"))
    reply_format = w.Dropdown(options=REPLY_FORMATS,
                              value=check_format(options.pop("reply_format", "free")),
                              description="reply format", style=readable,
                              layout=w.Layout(width="240px"))
    run_button = w.Button(description="Run", button_style="success", icon="play")
    stop_button = w.Button(description="Stop", button_style="danger", icon="stop",
                           disabled=True)
    status = w.HTML("Set the sliders and press Run.")
    picture = w.Image(format="png", layout=w.Layout(display="none"))  # shown once drawn
    hidden = w.Layout(display="none")
    tick, tock = w.IntText(0, layout=hidden), w.IntText(0, layout=hidden)
    w.jsdlink((tick, "value"), (tock, "value"))  # the page echoes each tick as a tock
    controller = PanelController(dataset, model, **options)

    def show() -> None:
        if controller.run is not None and controller.run.records[1:]:
            picture.value = render_png(controller.run, dataset)
            picture.layout.display = None
        running = controller.running
        run_button.disabled, stop_button.disabled = running, not running
        if not running and controller.run is not None:  # the next run samples anew
            seed.value = min(controller.settings["seed"] + 1, MAX_SEED)
        status.value = html.escape(controller.status())  # last: the step's news is all out

    def step() -> None:
        going = controller.advance()
        show()
        if going:
            tick.value += 1  # the page answers with a tock: the next step

    def on_run(_button) -> None:
        try:
            claimed = controller.start(temperature=temperature.value, steps=steps.value,
                                       proposals_per_step=proposals.value, seed=seed.value,
                                       reply_format=reply_format.value)
        except ValueError as error:
            status.value = html.escape(f"error: {error}")
            return
        if claimed:  # a click while a run is going changes nothing
            status.value = "starting..."
            run_button.disabled, stop_button.disabled = True, False
            step()

    def on_stop(_button) -> None:
        if controller.running:  # a click is read between steps: the run ends here
            controller.stop()
            show()

    def on_tock(change) -> None:
        if controller.running and change["new"] == tick.value:
            step()

    run_button.on_click(on_run)
    stop_button.on_click(on_stop)
    tock.observe(on_tock, names="value")
    panel = w.VBox([w.HBox([temperature, steps]), w.HBox([proposals, seed, reply_format]),
                    w.HBox([run_button, stop_button]), status, picture, tick, tock])
    panel.controller = controller
    panel.controls = {"temperature": temperature, "steps": steps, "proposals": proposals,
                      "seed": seed, "reply_format": reply_format, "run": run_button,
                      "stop": stop_button, "status": status,
                      "picture": picture, "tick": tick, "tock": tock}
    return panel
