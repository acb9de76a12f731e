"""llm_optimizer: a large language model as a numerical optimizer (OPRO) for linear regression."""

from .baselines import gradient_descent, hill_climb, random_search
from .data import Dataset, make_dataset
from .loop import optimize
from .models import LLM, ServerModel, load_model, plan_load
from .prompt import build_meta_prompt, parse_reply
from .regression import closed_form, mse, sse
from .run import Run
from .stopping import AtOptimum, LastKBelow, TargetLoss

__version__ = "0.1.0"

__all__ = [
    "LLM",
    "AtOptimum",
    "Dataset",
    "LastKBelow",
    "Run",
    "ServerModel",
    "TargetLoss",
    "build_meta_prompt",
    "closed_form",
    "gradient_descent",
    "hill_climb",
    "load_model",
    "make_dataset",
    "mse",
    "optimize",
    "parse_reply",
    "plan_load",
    "random_search",
    "sse",
]
