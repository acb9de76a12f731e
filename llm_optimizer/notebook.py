"""What a notebook calls: the set-up cell's report and figure style, quick mode for CI,
tables that show a missing number as a dash, and the switch to a served model."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version

from .models.server import API_KEY_ENV, is_url, public_url
from .runtime import (
    MODEL_ENV,
    NO_GPU_ON_COLAB,
    SERVED_MODEL_ENV,
    gpu,
    model_from_env,
    on_colab,
    quick,
)

PACKAGES = ["torch", "transformers", "bitsandbytes", "numpy", "pandas", "matplotlib",
            "ipywidgets", "llm-optimizer"]


def pick(full, quick_value):
    """``quick_value`` in quick mode, else ``full``."""
    return quick_value if quick() else full


def dashed(table, missing: str = "\u2014"):
    """``table`` (a DataFrame) with its missing values written as ``missing``, for showing:
    a reply without a pair has no w, b or loss. Every column becomes one of objects, so no
    column of numbers is asked to hold text."""
    return table.astype(object).where(table.notna(), missing)


def setup() -> dict[str, str]:
    """Print the versions this notebook runs on and what hardware it has; return them.

    Figures drawn after it have type sized for a projector and a layout that keeps labels
    from overlapping.
    """
    import matplotlib

    from .plots import STYLE

    matplotlib.rcParams.update({**STYLE, "figure.constrained_layout.use": True})
    info = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            info[name] = version(name)
        except PackageNotFoundError:
            info[name] = "not installed"
    here = gpu()
    info["gpu"] = "none (CPU only)" if here is None else here.name
    info["quick mode"] = "on" if quick() else "off"
    for key, value in info.items():
        print(f"{key:>13}: {value}")
    if on_colab() and here is None:
        print("\n" + NO_GPU_ON_COLAB)
    return info


def use_server(url: str | None = None, *, served_model: str | None = None,
               secret: str = API_KEY_ENV) -> str:
    """The notebooks' switch cell: point ``load_model("auto")`` at a served or hosted
    model that speaks the OpenAI API, and return (and print) what it will load.

    ``url`` (such as ``"http://HOST:8000/v1"``) goes into ``LLM_OPTIMIZER_MODEL`` and
    ``served_model``, the model's name there, into ``LLM_OPTIMIZER_SERVED_MODEL``; with
    ``url=None`` nothing changes, so a teacher's or a test's setting stands. The key is
    never an argument: it stays in ``OPENAI_API_KEY`` if that is set, and on Colab it is
    otherwise read from the notebook secret named ``secret`` (the key icon in the sidebar).
    """
    if url is not None:
        if not is_url(url):
            raise ValueError(f"url must be a server address starting with http:// or https://, "
                             f"such as 'http://HOST:8000/v1', or None; got {url!r}")
        if served_model is not None and not (isinstance(served_model, str) and served_model):
            raise ValueError("served_model must be the model's name on the server or None for "
                             f"the only one it serves, got {served_model!r}")
        os.environ[MODEL_ENV] = url
        os.environ.pop(SERVED_MODEL_ENV, None)
        if served_model:
            os.environ[SERVED_MODEL_ENV] = served_model
    chosen, served = model_from_env()
    if is_url(chosen):
        said = f"{served or 'the only model it serves'} at {public_url(chosen)} "
        said += f"({_key_found(secret)})"
    else:
        said = chosen or "chosen by the hardware (Mistral-7B on a GPU, else SmolLM2-135M)"
    print(f'load_model("auto") loads: {said}')
    return said


def _key_found(secret: str) -> str:
    """Where the served model's key comes from; copies a Colab secret into the
    environment. Never returns or prints the key itself."""
    if os.environ.get(API_KEY_ENV):
        return f"key from {API_KEY_ENV}"
    if not on_colab():
        return f"no key: set {API_KEY_ENV} if the server needs one"
    from google.colab import userdata

    refused = tuple(getattr(userdata, name) for name in
                    ("SecretNotFoundError", "NotebookAccessError", "TimeoutException")
                    if hasattr(userdata, name))
    try:
        key = userdata.get(secret)
    except refused:
        return (f"no key: add a secret named {secret} under the key icon and let this "
                "notebook read it, if the server needs one")
    os.environ[API_KEY_ENV] = key
    return f"key from the Colab secret {secret}"
