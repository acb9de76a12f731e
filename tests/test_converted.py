"""The bundled GGUF file is read once, then loaded from its converted folder."""

import gguf
import pytest
import torch

from llm_optimizer import build_meta_prompt, load_model
from llm_optimizer.models import converted
from llm_optimizer.models.loading import bundled_model_path

PROMPT = build_meta_prompt([(1.0, 2.0, 30.0), (3.0, 4.0, 10.0)], max_pairs=5, decimals=2)


@pytest.mark.model
def test_the_bundled_model_is_read_from_gguf_once_then_from_the_same_weights_saved(
        tmp_path, monkeypatch):
    monkeypatch.setenv(converted.CACHE_ENV, str(tmp_path / "cache"))
    folder = converted.cached_folder(bundled_model_path())
    assert folder.parent == tmp_path / "cache" and not converted.ready(folder)
    first = load_model("smollm2")  # from the GGUF file
    assert converted.ready(folder)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary left

    def no_gguf(*args, **kwargs):
        raise AssertionError("the GGUF file was read again")

    monkeypatch.setattr(gguf.GGUFReader, "__init__", no_gguf)
    second = load_model("smollm2")  # from the folder
    assert (second.name, second.prompt_style) == (first.name, first.prompt_style) == (
        "SmolLM2-135M-Instruct", "completion")
    text = second.render(PROMPT)
    ids = first.tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(ids, second.tokenizer(text, return_tensors="pt").input_ids)
    assert first.tokenizer.eos_token == second.tokenizer.eos_token
    with torch.no_grad():
        assert torch.equal(first.model(ids).logits, second.model(ids).logits)
    assert (first.generate(PROMPT, n=4, max_new_tokens=8, seed=0)
            == second.generate(PROMPT, n=4, max_new_tokens=8, seed=0))


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    gguf_file = tmp_path / "tiny.gguf"
    gguf_file.write_bytes(b"GGUF")
    monkeypatch.setenv(converted.CACHE_ENV, "off")
    assert converted.cache_root() is None and converted.cached_folder(gguf_file) is None
    monkeypatch.delenv(converted.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert converted.cache_root() == tmp_path / "xdg" / "llm-optimizer"
    monkeypatch.setenv(converted.CACHE_ENV, str(tmp_path / "mine"))
    folder = converted.cached_folder(gguf_file)
    assert folder.parent == tmp_path / "mine" and folder.name.startswith("tiny-")
    copy = tmp_path / "elsewhere" / "tiny.gguf"
    copy.parent.mkdir()
    copy.write_bytes(b"GGUF")
    assert converted.cached_folder(copy) == folder  # the same bytes: the same folder
    gguf_file.write_bytes(b"GGUF, changed")  # other bytes: another folder
    assert converted.cached_folder(gguf_file) != folder
    monkeypatch.setattr(converted, "MAX_GGUF_BYTES", 4)
    assert converted.cached_folder(gguf_file) is None  # too large to keep dequantized


@pytest.mark.model
def test_a_cache_that_cannot_be_written_warns_and_a_finished_folder_stays(
        tiny_model_dir, tmp_path):
    llm = load_model(str(tiny_model_dir), precision="fp32")  # a plain transformers model
    blocked = tmp_path / "a file"
    blocked.write_text("")
    with pytest.warns(UserWarning, match="could not keep the converted model"):
        assert not converted.save(llm.model, llm.tokenizer, blocked / "model")
    folder = tmp_path / "cache" / "model"
    assert converted.save(llm.model, llm.tokenizer, folder) and converted.ready(folder)
    before = (folder / "model.safetensors").stat().st_mtime_ns
    assert converted.save(llm.model, llm.tokenizer, folder)  # another process was first
    assert (folder / "model.safetensors").stat().st_mtime_ns == before
    assert [p.name for p in folder.parent.iterdir()] == ["model"]
    link = tmp_path / "link"
    link.symlink_to(folder)
    assert not converted.ready(link)
