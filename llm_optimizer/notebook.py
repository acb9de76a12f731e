"""What a notebook calls: the set-up cell's report and figure style, quick mode for CI,
and tables that show a missing number as a dash."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

from .runtime import NO_GPU_ON_COLAB, gpu, on_colab, quick

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
