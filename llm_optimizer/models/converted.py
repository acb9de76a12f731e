"""A small GGUF file read once: its weights and tokenizer kept as a safetensors folder.

Reading a GGUF file through ``transformers`` is slow: the tokenizer, the config and the
weights each parse the whole file again, and the weights are dequantized, which for the
bundled 98 MB SmolLM2 on a 2-core CPU takes many times as long as reading the same model
saved as safetensors (time two ``load_model("smollm2")`` calls with an empty cache to see
it). So the first load of
a GGUF file of at most ``MAX_GGUF_BYTES`` saves what it read in a cache folder, and later
loads (a notebook's kernel, the command line, the tests) read that folder instead. The
weights are the same fp32 numbers, dequantized once.

The folder is ``$LLM_OPTIMIZER_CACHE`` (``off`` turns the cache off), else
``$XDG_CACHE_HOME/llm-optimizer``, else ``~/.cache/llm-optimizer``; one sub-folder per
file, named by the file's name, a digest of its bytes and the transformers version, so a
changed file or library is read afresh and every copy of the same file shares one
folder. A folder is written under a temporary name and renamed when complete; a folder
that cannot be written only means the next load reads the GGUF file again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

CACHE_ENV = "LLM_OPTIMIZER_CACHE"
MAX_GGUF_BYTES = 256 * 2**20  # larger files would take many GB once dequantized


def cache_root() -> Path | None:
    """Where converted files are kept, or ``None`` when ``$LLM_OPTIMIZER_CACHE`` is ``off``."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "llm-optimizer"


def cached_folder(gguf: Path) -> Path | None:
    """The cache folder for ``gguf`` (which may not exist yet), or ``None`` when the
    file is too large to convert or the cache is off."""
    root = cache_root()
    if root is None or gguf.stat().st_size > MAX_GGUF_BYTES:
        return None
    from transformers import __version__

    digest = hashlib.sha256()
    with gguf.open("rb") as file:
        for chunk in iter(lambda: file.read(2**20), b""):
            digest.update(chunk)
    return root / f"{gguf.stem}-{digest.hexdigest()[:16]}-transformers{__version__}"


def ready(folder: Path | None) -> bool:
    """Whether ``folder`` holds a complete conversion (a real folder, not a link)."""
    return (folder is not None and folder.is_dir() and not folder.is_symlink()
            and (folder / "config.json").is_file() and (folder / "model.safetensors").is_file())


def savable(model: Any) -> Any:
    """The same weights in a model ``save_pretrained`` accepts: it refuses a model loaded
    from GGUF, so the same architecture is built from its config and given its weights."""
    from transformers import AutoModelForCausalLM

    plain = AutoModelForCausalLM.from_config(model.config, dtype=model.dtype)
    plain.load_state_dict(model.state_dict())
    plain.config.architectures = [type(plain).__name__]
    return plain


def save(model: Any, tokenizer: Any, folder: Path) -> bool:
    """Save a GGUF-loaded ``model`` and ``tokenizer`` as ``folder``; ``False`` if it could
    not be written (the reason is given as a warning)."""
    temp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        savable(model).save_pretrained(temp)
        tokenizer.save_pretrained(temp)
        os.rename(temp, folder)  # an empty or absent target only: a finished folder stays
        return True
    except OSError as error:
        if not ready(folder):
            warnings.warn(f"could not keep the converted model in {folder} ({error}); the "
                          f"next load reads the GGUF file again. Set {CACHE_ENV} to a "
                          "writable folder, or to 'off'.", stacklevel=3)
        return ready(folder)
    finally:
        if temp is not None and temp.exists():
            shutil.rmtree(temp, ignore_errors=True)
