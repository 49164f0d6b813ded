"""Named RWKV checkpoints to loaded models (upstream's ``hyperscalees.models.llm.auto``).

``get_model("7g0.1B")`` downloads the official ``.pth`` from the Hugging Face Hub (through
``huggingface_hub``), converts it with ``RWKV.load_from_torch`` and caches the result in
``<HF_HOME>/jax_reference_cache/<name>_<dtype>.model`` (upstream: ``hyperscalees_cache``; a
separate directory, because the pickles name each package's own classes); later calls read the
cache. With ``checkpoint=<local .pth>`` nothing is downloaded and no cache is read or written.

The checkpoint catalogue, the tokenizers, the cache location and :func:`save` are shared with
``eggroll_torch.models.llm.auto`` (they hold no arrays); :data:`models` maps the same names to this
package's ``rwkv7``.
"""
import importlib
import pickle

import jax
import jax.numpy as jnp

from eggroll_torch.models.llm.auto import (
    CHECKPOINTS,
    HubCheckpoint,
    cache_path,
    check_loadable,
    get_tokenizer,
    hf_home,
    read_checkpoint,
    save,
    suffix,
)

from . import rwkv7

__all__ = [
    "CHECKPOINTS",
    "HubCheckpoint",
    "cache_path",
    "get_model",
    "get_tokenizer",
    "hf_home",
    "load",
    "models",
    "read_checkpoint",
    "save",
    "suffix",
]

CACHE_DIR_NAME = "jax_reference_cache"

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


def _entry(model_name):
    try:
        return models[model_name]
    except KeyError:
        raise KeyError(f"unknown model {model_name!r}; the table has {', '.join(models)}") from None


def _resolve_dtype(model_name, dtype):
    # Upstream's rule: None -> bfloat16 (float32 for names starting with "m", none of which the
    # table has); a string -> bfloat16 if it is "bfloat16", otherwise float32; a dtype as given.
    if dtype is None:
        return jnp.float32 if model_name.startswith("m") else jnp.bfloat16
    if isinstance(dtype, str):
        return jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
    return dtype


def get_model(model_name, dtype=None, rwkv_type="BaseRWKV", verbose=False, reload_cache=False, *,
              checkpoint=None, cache_dir=None):
    """``(RWKV, params, tokenizer)`` for a name of :data:`models`: the model class
    ``getattr(module, rwkv_type)``, the :class:`~jax_reference.models.base_model.CommonInit` of
    the converted checkpoint (arrays on the CPU) and an instance of the model's tokenizer.

    ``dtype``: None gives ``jnp.bfloat16``; a string gives ``jnp.bfloat16`` for ``"bfloat16"``
    and ``jnp.float32`` for anything else (``"float16"`` included, as upstream); a JAX/NumPy
    dtype is used as given. ``verbose`` prints the dtype and the cache file read or written.

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
    path = cache_path(model_name, jnp.dtype(dtype).name, cache_dir, CACHE_DIR_NAME)
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


def load(path):
    """What :func:`save` wrote to ``path`` (a ``.model`` file; anything else raises ValueError),
    unpickled with the host CPU as JAX's default device, so arrays load onto the CPU. It is
    unpickled: load only files you trust."""
    path = check_loadable(path)
    with jax.default_device(jax.local_devices(backend="cpu")[0]), open(path, "rb") as file:
        return pickle.load(file)
