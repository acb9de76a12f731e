"""Number formats per phase and the thread count per step: the CPU's capabilities, the
choice made at load, the int8 layer's numerics, and the replies in every format."""

import multiprocessing
import time

import pytest
import torch
from transformers import DynamicCache

from llm_optimizer import load_model, make_dataset, optimize
from llm_optimizer.models import cpu
from llm_optimizer.models.local import sample_rows
from llm_optimizer.models.precision import (
    Fp16Linear,
    Int8Linear,
    Precision,
    auto_precision,
    cast_cache,
    parse_precision,
)

XEON = "processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC = "processor\t: 0\nflags\t\t: fpu sse avx2 fma f16c\n"
GRAVITON = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize(("cpuinfo", "bf16"), [(XEON, True), (EPYC, False), (GRAVITON, True),
                                                ("", False)])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, bf16):
    assert cpu.native_bf16(cpu.cpu_flags(cpuinfo)) is bf16


def test_int8_and_fp16_kernels_are_the_ones_torch_vectorizes_on_this_cpu():
    fbgemm = ["qnnpack", "fbgemm"]
    assert cpu.int8_kernel("AVX512", fbgemm) == "pack"
    assert cpu.int8_kernel("AVX2", fbgemm) == "fbgemm"
    assert cpu.int8_kernel("AVX2", ["qnnpack"]) is None  # a torch built without fbgemm
    assert cpu.int8_kernel("DEFAULT", fbgemm) is None
    # int8 weights times fp32 activations are fast on AVX-512 only
    assert cpu.fast_int8("AVX512") is True
    assert cpu.fast_int8("AVX2") is False and cpu.fast_int8("DEFAULT") is False
    assert cpu.fbgemm("AVX2", fbgemm) and cpu.fbgemm("AVX512", fbgemm)
    assert not cpu.fbgemm("DEFAULT", fbgemm) and not cpu.fbgemm("AVX2", ["qnnpack"])


@pytest.mark.parametrize(("bf16", "int8", "fp16", "expected"), [
    (True, True, True, "bf16/int8"), (True, False, False, "bf16/fp32"),
    (False, True, True, "fp32/int8"), (False, False, True, "fp32/fp16"),
    (True, False, True, "bf16/fp16"), (False, False, False, "fp32")])
def test_auto_picks_bf16_prompt_and_int8_or_fp16_decoding_where_they_are_fast(
        bf16, int8, fp16, expected):
    assert str(auto_precision(bf16=bf16, int8=int8, fp16=fp16)) == expected


def test_weight_only_decoding_computes_in_fp32_and_a_gpu_model_in_its_own_format():
    assert parse_precision("fp32/fp16").decode_dtype == torch.float32
    assert parse_precision("bf16/int8").decode_dtype == torch.float32
    assert parse_precision("bf16").decode_dtype == torch.bfloat16
    assert Precision("fp16", "fp16").decode_dtype == torch.float16  # as a T4 loads Mistral


def test_precision_names_parse_and_print_back():
    assert parse_precision("fp32") == Precision("fp32", "fp32")
    assert parse_precision("bf16") == Precision("bf16", "bf16")
    assert str(parse_precision("bf16/int8")) == "bf16/int8"
    assert parse_precision("fp32/fp32") == Precision()
    assert parse_precision("auto") == auto_precision()


@pytest.mark.parametrize("bad", ["int8", "fp16", "bf16/int4", "", "FP32", 32])
def test_a_bad_precision_says_what_is_allowed(bad):
    with pytest.raises(ValueError, match="precision must be"):
        parse_precision(bad)


@pytest.mark.parametrize(("kernel", "within"), [("pack", 0.02), ("fbgemm", 0.05)])
def test_int8_linear_is_within_int8_rounding_of_the_fp32_layer(kernel, within):
    if kernel == "fbgemm" and "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this torch has no fbgemm (it is built for x86 only)")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    layer = Int8Linear(linear, kernel)
    x = torch.randn(3, 5, 64)
    exact = linear(x)
    assert layer(x).shape == exact.shape and f"int8 {kernel}" in repr(layer)
    # Per-row scales: each weight is off by at most half a step, max|row| / 254; fbgemm
    # also rounds the activations to 7 bits, max|x| / 126.
    assert (layer(x) - exact).abs().max() < within * exact.abs().max()
    assert (layer(x) - exact).abs().max() > 0  # it really is another layer


def test_fp16_linear_is_within_fp16_rounding_of_the_fp32_layer():
    if not cpu.fbgemm():
        pytest.skip("fbgemm runs on x86 CPUs with AVX2 only")
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    layer = Fp16Linear(linear)
    x = torch.randn(3, 5, 64)
    exact = linear(x)
    assert layer(x).shape == exact.shape and "fp16 fbgemm" in repr(layer)
    assert 0 < (layer(x) - exact).abs().max() < 2e-3 * exact.abs().max()


def test_an_unknown_int8_kernel_says_which_exist():
    with pytest.raises(ValueError, match="kernel must be one of pack, fbgemm"):
        Int8Linear(torch.nn.Linear(4, 4), "avx")


def test_a_prefill_cache_is_brought_to_the_decoding_format():
    cache = DynamicCache()
    cache.update(torch.ones(1, 2, 3, 4, dtype=torch.bfloat16),
                 torch.ones(1, 2, 3, 4, dtype=torch.bfloat16), 0)
    cast_cache(cache, torch.float32)
    assert cache.layers[0].keys.dtype == cache.layers[0].values.dtype == torch.float32


@pytest.mark.parametrize(("cores", "others", "threads"), [
    (2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 2.0, 1), (2, 7.5, 1), (4, 1.0, 3),
    (2, None, 2)])
def test_threads_are_the_cores_others_leave_free(cores, others, threads):
    assert cpu.threads_for(cores, others) == threads


def test_busy_cores_of_others_come_from_proc_stat_minus_our_own_time():
    stat = ("cpu  900 0 0 0 0 0 0 0\ncpu0 100 0 50 1000 0 0 0 0\n"
            "cpu1 100 0 50 1000 0 0 0 10\ncpu2 999 0 0 0 0 0 0 0\n")
    before = cpu.read_cpu(stat, cores={0, 1})
    later = stat.replace("cpu0 100", "cpu0 250").replace("cpu1 100", "cpu1 200")
    after = cpu.read_cpu(later, cores={0, 1})
    assert after.busy - before.busy == pytest.approx(2.5)  # cpu2 is not ours
    moved = cpu.Reading(before.wall + 2.0, after.busy, before.own + 1.0)
    assert cpu.others_busy(before, moved) == pytest.approx((2.5 - 1.0) / 2.0)
    assert cpu.others_busy(cpu.Reading(0, None, 0), moved) is None


def _spin():
    while True:
        pass


def test_a_step_on_a_busy_machine_runs_on_one_thread_and_restores_the_count():
    cores = cpu.usable_cores()
    if cores < 2:
        pytest.skip("this process may run on one core only: there is no thread count to choose")
    # Under pytest-xdist a worker runs on 1 thread (tests/conftest.py): give this test two.
    outer = torch.get_num_threads()
    torch.set_num_threads(2)
    policy = cpu.ThreadPolicy()
    loops = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(cores)]
    for p in loops:
        p.start()
    try:
        time.sleep(0.5)
        with policy.step() as threads:
            assert threads == torch.get_num_threads() == 1 and policy.others > cores - 1
        assert torch.get_num_threads() == 2
        fixed = cpu.ThreadPolicy(adaptive=False)
        with fixed.step() as threads:
            assert threads == 2 and fixed.others is None
    finally:
        for p in loops:
            p.terminate()
            p.join()
        torch.set_num_threads(outer)


PRECISIONS = ["fp32", "bf16", "bf16/fp32", "fp32/int8", "bf16/int8", "fp32/fp16", "bf16/fp16"]


@pytest.mark.model
@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_samples_repeatably_and_shares_the_prompt(tiny_model_dir, precision):
    llm = load_model(str(tiny_model_dir), precision=precision)
    assert f"precision='{precision}'" in repr(llm) and str(llm.precision) == precision
    assert llm.allowed_tokens("pair")  # the grammar finds the vocabulary's size
    prompt = "Propose a pair [w, b]."
    a = llm.generate(prompt, n=4, max_new_tokens=6, seed=3)
    assert a == llm.generate(prompt, n=4, max_new_tokens=6, seed=3)
    assert llm._can_share(20)
    shared = llm.generate(prompt, n=3, max_new_tokens=6, do_sample=False)
    llm._shares_prefix = False
    assert llm.generate(prompt, n=3, max_new_tokens=6, do_sample=False) == shared


@pytest.mark.model
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_greedy_equals_plain_generate_in_one_format(tiny_model_dir, precision):
    llm = load_model(str(tiny_model_dir), precision=precision)
    prompt = "Propose a pair [w, b]."
    ids = llm.encode(prompt)
    out = llm.model.generate(ids, do_sample=False, max_new_tokens=8,
                             pad_token_id=llm.tokenizer.eos_token_id)
    plain = llm.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert plain.startswith(llm.generate(prompt, n=2, max_new_tokens=8, do_sample=False)[0])


@pytest.mark.model
def test_the_precision_is_saved_with_a_run(tiny_model_dir, tmp_path):
    llm = load_model(str(tiny_model_dir), precision="fp32/int8")
    run = optimize(make_dataset("article"), llm, steps=1, proposals_per_step=2,
                   out_dir=tmp_path / "run")
    assert run.settings["precision"] == "fp32/int8"
    assert '"precision": "fp32/int8"' in (tmp_path / "run" / "settings.json").read_text()


def test_a_bad_precision_fails_before_the_weights_load():
    with pytest.raises(ValueError, match="precision must be"):
        load_model("smollm2", precision="int3")


@pytest.mark.parametrize("vocab", [1000, 700, 40])
def test_sampling_by_blocks_draws_each_token_with_its_probability(vocab):
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(vocab) * 2, -1)
    probs[::7] = 0.0  # tokens a grammar masked out
    probs /= probs.sum()
    draws = 40_000
    generator = torch.Generator().manual_seed(0)
    tokens = sample_rows(probs.expand(draws, -1).contiguous(), generator)
    counts = torch.bincount(tokens, minlength=vocab)
    assert counts[::7].sum() == 0 and counts.shape == (vocab,)
    # Each count is binomial: within 5 standard deviations of draws * p.
    sd = (draws * probs * (1 - probs)).sqrt()
    assert ((counts - draws * probs).abs() <= 5 * sd + 1).all()
    again = sample_rows(probs.expand(draws, -1).contiguous(), torch.Generator().manual_seed(0))
    assert torch.equal(again, tokens)
