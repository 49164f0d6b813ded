"""Named RWKV checkpoints to loaded models (upstream's ``hyperscalees.models.llm.auto``).

``get_model("7g0.1B")`` downloads the official ``.pth`` from the Hugging Face Hub (through
``huggingface_hub``), converts it with ``RWKV.load_from_torch`` and caches the result in
``<HF_HOME>/eggroll_torch_cache/<name>_<dtype>.model``; later calls read the cache. With
``checkpoint=<local .pth>`` nothing is downloaded and no cache is read or written.

Also the framework-free parts that ``jax_reference.models.llm.auto`` shares: the checkpoint
catalogue :data:`CHECKPOINTS`, :class:`HubCheckpoint`, :func:`hf_home`, :func:`cache_path`,
:func:`read_checkpoint`, :func:`get_tokenizer` and :func:`save`.
"""
from __future__ import annotations

import importlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from . import rwkv7
from .tokenizer import GptTokenizer, WorldTokenizer

__all__ = [
    "CHECKPOINTS",
    "HubCheckpoint",
    "cache_path",
    "check_loadable",
    "get_model",
    "get_tokenizer",
    "hf_home",
    "load",
    "models",
    "read_checkpoint",
    "save",
    "suffix",
]

suffix = ".model"
CACHE_DIR_NAME = "eggroll_torch_cache"


@dataclass(frozen=True)
class HubCheckpoint:
    """A checkpoint file in a Hugging Face Hub repository. Calling it downloads the file into the
    Hub's own cache (once) with ``huggingface_hub.hf_hub_download`` and returns its local path."""

    repo_id: str
    filename: str

    def __call__(self) -> str:
        try:
            from huggingface_hub import hf_hub_download
        except ImportError as error:
            raise ImportError(
                f"downloading {self.repo_id}/{self.filename} needs the `huggingface_hub` package "
                "(pip install -e '.[llm]'); or pass checkpoint=<path of a local .pth> to get_model"
            ) from error
        return hf_hub_download(repo_id=self.repo_id, filename=self.filename)


# The RWKV-7 checkpoints upstream's table has enabled, with the tokenizer each was trained with:
# "7w" World, "7n" Pile (GPT-NeoX tokenizer), "7g" G1.
CHECKPOINTS = {
    "7w0.1B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv-7-world", "RWKV-x070-World-0.1B-v2.8-20241210-ctx4096.pth")),
    "7w0.4B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv-7-world", "RWKV-x070-World-0.4B-v2.9-20250107-ctx4096.pth")),
    "7w1.5B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv-7-world", "RWKV-x070-World-1.5B-v3-20250127-ctx4096.pth")),
    "7w3B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv-7-world", "RWKV-x070-World-2.9B-v3-20250211-ctx4096.pth")),
    "7n0.1B": (GptTokenizer, HubCheckpoint("BlinkDL/rwkv-7-pile", "RWKV-x070-Pile-168M-20241120-ctx4096.pth")),
    "7n0.4B": (GptTokenizer, HubCheckpoint("BlinkDL/rwkv-7-pile", "RWKV-x070-Pile-421M-20241127-ctx4096.pth")),
    "7n1.5B": (GptTokenizer, HubCheckpoint("BlinkDL/rwkv-7-pile", "RWKV-x070-Pile-1.47B-20241210-ctx4096.pth")),
    "7g0.1B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g1a-0.1b-20250728-ctx4096.pth")),
    "7g0.4B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g1-0.4b-20250324-ctx4096.pth")),
    "7g1.5B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g1-1.5b-20250429-ctx4096.pth")),
    "7g2.9B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g1-2.9b-20250519-ctx4096.pth")),
    "7g7B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g0-7.2b-20250722-ctx4096.pth")),
    "7g14B": (WorldTokenizer, HubCheckpoint("BlinkDL/rwkv7-g1", "rwkv7-g0a3-13.3b-20251031-ctx4096.pth")),
}

# name -> (model module, tokenizer class, checkpoint fetcher, config function or None), upstream's
# layout: the fetcher returns a local path; the config function, where there is one, the config
# handed to ``load_from_torch``.
models = {name: (rwkv7, tokenizer, fetch, None) for name, (tokenizer, fetch) in CHECKPOINTS.items()}


def __getattr__(name):
    # ``versions`` (upstream's version -> model module table) names qrwkv6 too, which is imported
    # on first use only, so that this module loads, and RWKV-7 works, without it. Once built it is
    # an ordinary module attribute.
    if name == "versions":
        globals()["versions"] = {"7": rwkv7, "6q": importlib.import_module(".qrwkv6", __package__)}
        return globals()["versions"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def hf_home() -> Path:
    """The Hugging Face home directory, by ``huggingface_hub``'s rule, read at call time:
    ``$HF_HOME``, else ``$XDG_CACHE_HOME/huggingface``, else ``~/.cache/huggingface``."""
    default = os.path.join(os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(os.getenv("HF_HOME", default))))


def cache_path(model_name: str, dtype_name: str, cache_dir=None, default_dir_name: str = CACHE_DIR_NAME) -> Path:
    """Where :func:`get_model` caches ``model_name`` converted to ``dtype_name``:
    ``<cache_dir>/<model_name>_<dtype_name>.model``, ``cache_dir`` defaulting to
    ``hf_home() / default_dir_name``."""
    directory = Path(hf_home(), default_dir_name) if cache_dir is None else Path(cache_dir)
    return directory / f"{model_name}_{dtype_name}{suffix}"


def read_checkpoint(path) -> dict:
    """The state dict of a ``.pth`` checkpoint on the CPU; only tensors and plain containers are
    unpickled (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def _entry(model_name):
    try:
        return models[model_name]
    except KeyError:
        raise KeyError(f"unknown model {model_name!r}; the table has {', '.join(models)}") from None


def _resolve_dtype(model_name, dtype) -> torch.dtype:
    # Upstream's rule: None -> bfloat16 (float32 for names starting with "m", none of which the
    # table has); a string -> bfloat16 if it is "bfloat16", otherwise float32; a dtype as given.
    if dtype is None:
        return torch.float32 if model_name.startswith("m") else torch.bfloat16
    if isinstance(dtype, str):
        return torch.bfloat16 if dtype == "bfloat16" else torch.float32
    return dtype


def get_model(model_name, dtype=None, rwkv_type="BaseRWKV", verbose=False, reload_cache=False, *,
              checkpoint=None, cache_dir=None):
    """``(RWKV, params, tokenizer)`` for a name of :data:`models`: the model class
    ``getattr(module, rwkv_type)``, the :class:`~eggroll_torch.models.base_model.CommonInit` of
    the converted checkpoint and an instance of the model's tokenizer.

    ``dtype``: None gives ``torch.bfloat16``; a string gives ``torch.bfloat16`` for
    ``"bfloat16"`` and ``torch.float32`` for anything else (``"float16"`` included, as upstream);
    a torch dtype is used as given. ``verbose`` prints the dtype and the cache file read or written.

    Without ``checkpoint``: the cache file :func:`cache_path` (under ``cache_dir`` if given) is
    read when it exists and ``reload_cache`` is False; otherwise the checkpoint is downloaded,
    converted and written there (replacing any old file). ``checkpoint``: the path of a local
    ``.pth`` in the official layout to convert instead; nothing is downloaded, and the cache is
    neither read nor written, so a cache file always stands for the downloaded checkpoint.
    """
    rwkv, tokenizer_cls, fetch, config_fn = _entry(model_name)
    RWKV = getattr(rwkv, rwkv_type)
    tokenizer = tokenizer_cls()
    dtype = _resolve_dtype(model_name, dtype)
    if verbose:
        print(dtype)
    path = cache_path(model_name, str(dtype).removeprefix("torch."), cache_dir)
    if checkpoint is None and path.is_file() and not reload_cache:
        if verbose:
            print("loading from", path)
        return RWKV, load(path), tokenizer
    config = config_fn() if config_fn is not None else None
    params = RWKV.load_from_torch(read_checkpoint(fetch() if checkpoint is None else checkpoint), config, dtype=dtype)
    if checkpoint is None:
        if verbose:
            print("saving to", path)
        save(params, path, True)
    return RWKV, params, tokenizer


def get_tokenizer(tokenizer_name):
    """The tokenizer CLASS called ``tokenizer_name``: ``"WorldTokenizer"`` or ``"GptTokenizer"``;
    any other name raises NotImplementedError."""
    if tokenizer_name == "WorldTokenizer":
        return WorldTokenizer
    if tokenizer_name == "GptTokenizer":
        return GptTokenizer
    raise NotImplementedError(f"No such tokenizer {tokenizer_name}")


def save(model, path, overwrite=False):
    """Pickle ``model`` to ``path`` with its suffix replaced by ``.model`` (``Path.with_suffix``:
    ``"a/b.pth"`` -> ``"a/b.model"``), creating parent directories. An existing file raises
    RuntimeError unless ``overwrite``. Written to a temporary file first and renamed, so an
    interrupted save never leaves a truncated cache file."""
    path = Path(path)
    if path.suffix != suffix:
        path = path.with_suffix(suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and not overwrite:
        raise RuntimeError(f"File {path} already exists.")
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as file:
        pickle.dump(model, file)
    os.replace(partial, path)


def check_loadable(path) -> Path:
    """``path`` as a Path if it is an existing ``.model`` file, else ValueError (what :func:`load`
    accepts)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Not a file: {path}")
    if path.suffix != suffix:
        raise ValueError(f"Not a {suffix} file: {path}")
    return path


def load(path):
    """What :func:`save` wrote to ``path`` (a ``.model`` file; anything else raises ValueError).
    It is unpickled: load only files you trust."""
    with open(check_loadable(path), "rb") as file:
        return pickle.load(file)
