"""get_model, the checkpoint table, the cache, save/load: eggroll_torch.models.llm.auto and
jax_reference.models.llm.auto, on a small random RWKV-7 checkpoint written to ``tmp_path`` in the
official ``.pth`` layout (nothing is downloaded: the table's fetchers are replaced or bypassed).

Equality with upstream's ``auto`` (table, dtype rules, converted params) is
``tests/upstream/test_tokenizer_identity.py``.
"""
from __future__ import annotations

import sys
import types
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import eggroll_torch.models.llm.auto as tauto
import jax_reference.models.llm.auto as jauto
from eggroll_torch.models.llm import rwkv7 as trwkv7
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
from eggroll_torch.models.llm.tokenizer import BaseTokenizer, GptTokenizer, WorldTokenizer
from jax_reference.models.llm import rwkv7 as jrwkv7


BACKENDS = {
    "torch": (tauto, trwkv7, {"bfloat16": torch.bfloat16, "float32": torch.float32}, "eggroll_torch_cache"),
    "jax": (jauto, jrwkv7, {"bfloat16": jnp.bfloat16, "float32": jnp.float32}, "jax_reference_cache"),
}


class Stub(BaseTokenizer):
    """Stands in for a table tokenizer, so that no tokenizer package is needed."""


class Fetch:
    """A table fetcher returning a local file and counting its calls."""

    def __init__(self, path):
        self.path, self.calls = path, 0

    def __call__(self):
        self.calls += 1
        return str(self.path)


def dtype_name(value) -> str:
    return str(value.dtype).removeprefix("torch.")


def leaves(params):
    """``{dotted path: float32 numpy array}`` of a params tree of either backend."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            out[prefix[:-1]] = np.asarray(node.float() if isinstance(node, torch.Tensor) else node.astype(jnp.float32))
    walk(params, "")
    return out


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(rwkv7_state_dict(0, 2, 2, 4, 11), path)
    return path


@pytest.fixture
def tiny(backend, checkpoint, monkeypatch):
    """A table entry ``"tiny"`` (the backend's rwkv7, a stub tokenizer, a counting fetcher)."""
    auto, rwkv, _, _ = backend
    fetch = Fetch(checkpoint)
    monkeypatch.setitem(auto.models, "tiny", (rwkv, Stub, fetch, None))
    return fetch


def test_local_checkpoint_is_converted_as_load_from_torch_converts_it(backend, tiny, checkpoint, tmp_path):
    auto, rwkv, dtypes, _ = backend
    RWKV, params, tokenizer = auto.get_model("tiny", checkpoint=checkpoint, cache_dir=tmp_path / "cache")
    assert RWKV is rwkv.BaseRWKV and isinstance(tokenizer, Stub)
    expected = rwkv.BaseRWKV.load_from_torch(torch.load(checkpoint), None, dtype=dtypes["bfloat16"])
    assert params.scan_map == expected.scan_map and params.es_map == expected.es_map
    assert params.frozen_params == expected.frozen_params
    mine, theirs = leaves(params.params), leaves(expected.params)
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_array_equal(mine[key], theirs[key], err_msg=key)
    assert tiny.calls == 0 and not (tmp_path / "cache").exists()  # no download, no cache


@pytest.mark.parametrize("rwkv_type", ["BaseRWKV", "ScanRWKV", "AssociativeScanRWKV", "FastRWKV"])
def test_rwkv_type_picks_the_class(backend, tiny, checkpoint, rwkv_type):
    auto, rwkv, _, _ = backend
    assert auto.get_model("tiny", rwkv_type=rwkv_type, checkpoint=checkpoint)[0] is getattr(rwkv, rwkv_type)


@pytest.mark.parametrize("given, expected", [
    (None, "bfloat16"), ("bfloat16", "bfloat16"), ("float32", "float32"), ("float16", "float32"), ("fp32", "float32"),
])
def test_dtype_rules(backend, tiny, checkpoint, tmp_path, given, expected):
    auto, _, _, _ = backend
    _, params, _ = auto.get_model("tiny", dtype=given, cache_dir=tmp_path)
    assert dtype_name(params.params["emb"]["weight"]) == expected
    assert (tmp_path / f"tiny_{expected}.model").is_file()


def test_a_dtype_object_is_used_as_given(backend, tiny, checkpoint):
    auto, _, dtypes, _ = backend
    for name, value in dtypes.items():
        _, params, _ = auto.get_model("tiny", dtype=value, checkpoint=checkpoint)
        assert dtype_name(params.params["emb"]["weight"]) == name


def test_names_starting_with_m_default_to_float32(backend, checkpoint, monkeypatch):
    auto, rwkv, _, _ = backend
    monkeypatch.setitem(auto.models, "mini", (rwkv, Stub, Fetch(checkpoint), None))
    assert dtype_name(auto.get_model("mini", checkpoint=checkpoint)[1].params["emb"]["weight"]) == "float32"


def test_cache_is_written_then_read_and_reload_cache_refetches(backend, tiny, tmp_path, capsys):
    auto, _, _, _ = backend
    cache = tmp_path / "cache"
    path = cache / "tiny_bfloat16.model"
    _, first, _ = auto.get_model("tiny", verbose=True, cache_dir=cache)
    assert tiny.calls == 1 and path.is_file() and not list(cache.glob("*.partial"))
    assert capsys.readouterr().out.splitlines()[1:] == [f"saving to {path}"]

    _, second, _ = auto.get_model("tiny", verbose=True, cache_dir=cache)
    assert tiny.calls == 1
    assert capsys.readouterr().out.splitlines()[1:] == [f"loading from {path}"]
    for key, value in leaves(first.params).items():
        np.testing.assert_array_equal(leaves(second.params)[key], value)
    assert second.scan_map == first.scan_map and second.es_map == first.es_map

    auto.get_model("tiny", reload_cache=True, cache_dir=cache)
    assert tiny.calls == 2 and path.is_file()


def test_a_local_checkpoint_ignores_an_existing_cache(backend, tiny, checkpoint, tmp_path):
    auto, _, _, _ = backend
    auto.save("not params", tmp_path / "tiny_bfloat16.model")
    _, params, _ = auto.get_model("tiny", checkpoint=checkpoint, cache_dir=tmp_path)
    assert params.params["emb"]["weight"].shape == (11, 8)
    assert auto.load(tmp_path / "tiny_bfloat16.model") == "not params"


def test_default_cache_lives_under_hf_home(backend, tiny, tmp_path, monkeypatch):
    auto, _, _, directory = backend
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    auto.get_model("tiny", dtype="float32")
    assert (tmp_path / "hf" / directory / "tiny_float32.model").is_file()


def test_verbose_prints_the_dtype(backend, tiny, checkpoint, capsys):
    auto, _, dtypes, _ = backend
    auto.get_model("tiny", verbose=True, checkpoint=checkpoint)
    assert capsys.readouterr().out == f"{dtypes['bfloat16']}\n"


def test_errors(backend, tiny, checkpoint, tmp_path):
    auto, _, _, _ = backend
    with pytest.raises(KeyError, match="7g0.1B"):
        auto.get_model("nope")
    with pytest.raises(AttributeError):
        auto.get_model("tiny", rwkv_type="NoSuchRWKV", checkpoint=checkpoint)
    with pytest.raises(FileNotFoundError):
        auto.get_model("tiny", checkpoint=tmp_path / "missing.pth")


def test_table_tokenizers_are_built(backend, checkpoint):
    auto, _, _, _ = backend
    pytest.importorskip("pyrwkv_tokenizer", reason="WorldTokenizer needs `pyrwkv-tokenizer` (pip install -e '.[llm]')")
    assert isinstance(auto.get_model("7g0.1B", checkpoint=checkpoint)[2], WorldTokenizer)


# --- the table -------------------------------------------------------------------------------------

def test_table_names_and_entries():
    names = ["7w0.1B", "7w0.4B", "7w1.5B", "7w3B", "7n0.1B", "7n0.4B", "7n1.5B",
             "7g0.1B", "7g0.4B", "7g1.5B", "7g2.9B", "7g7B", "7g14B"]
    assert list(tauto.models) == list(jauto.models) == list(tauto.CHECKPOINTS) == names
    for name in names:
        t, j = tauto.models[name], jauto.models[name]
        assert t[0] is trwkv7 and j[0] is jrwkv7
        assert t[1:] == j[1:] and t[3] is None
        assert t[1] is (GptTokenizer if name.startswith("7n") else WorldTokenizer)
        assert isinstance(t[2], tauto.HubCheckpoint) and t[2].filename.endswith(".pth")


@pytest.mark.parametrize("auto, rwkv", [(tauto, trwkv7), (jauto, jrwkv7)], ids=["torch", "jax"])
def test_versions_are_imported_lazily(auto, rwkv):
    try:
        versions = auto.versions
    except ImportError:
        pytest.skip(f"{auto.__package__}.qrwkv6 is not there (yet)")
    assert versions["7"] is rwkv and versions["6q"].__name__ == f"{auto.__package__}.qrwkv6"
    with pytest.raises(AttributeError):
        auto.no_such_name


def test_hub_checkpoint_downloads_through_huggingface_hub(monkeypatch):
    calls = []
    hub = types.ModuleType("huggingface_hub")
    hub.hf_hub_download = lambda repo_id, filename: calls.append((repo_id, filename)) or "/hub/x.pth"
    monkeypatch.setitem(sys.modules, "huggingface_hub", hub)
    fetch = tauto.models["7g0.1B"][2]
    assert fetch() == "/hub/x.pth" and calls == [("BlinkDL/rwkv7-g1", "rwkv7-g1a-0.1b-20250728-ctx4096.pth")]


def test_hub_checkpoint_without_huggingface_hub_says_what_to_do(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ImportError, match=r"huggingface_hub.*checkpoint="):
        tauto.models["7w0.1B"][2]()


def test_get_tokenizer():
    for auto in (tauto, jauto):
        assert auto.get_tokenizer("WorldTokenizer") is WorldTokenizer
        assert auto.get_tokenizer("GptTokenizer") is GptTokenizer
        with pytest.raises(NotImplementedError, match="No such tokenizer QwenTokenizer"):
            auto.get_tokenizer("QwenTokenizer")


@pytest.mark.parametrize("env, expected", [
    ({"HF_HOME": "/a/hf"}, "/a/hf"),
    ({"XDG_CACHE_HOME": "/x"}, "/x/huggingface"),
    ({"HF_HOME": "/a/hf", "XDG_CACHE_HOME": "/x"}, "/a/hf"),
    ({"HF_HOME": "~/hf"}, str(Path.home() / "hf")),
    ({}, str(Path.home() / ".cache" / "huggingface")),
])
def test_hf_home_rule(monkeypatch, env, expected):
    for name in ("HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tauto.hf_home() == Path(expected)


def test_hf_home_is_huggingface_hubs():
    constants = pytest.importorskip("huggingface_hub.constants", reason="huggingface_hub is not installed")
    assert tauto.hf_home() == Path(constants.HF_HOME)


# --- save / load ---------------------------------------------------------------------------------

@pytest.mark.parametrize("auto", [tauto, jauto], ids=["torch", "jax"])
def test_save_and_load(auto, tmp_path):
    value = {"a": [1, 2.5], "t": "x"}
    auto.save(value, tmp_path / "deep" / "m.model")
    assert auto.load(tmp_path / "deep" / "m.model") == value
    auto.save(value, tmp_path / "w.pth")  # the suffix is replaced
    assert (tmp_path / "w.model").is_file() and not (tmp_path / "w.pth").exists()
    with pytest.raises(RuntimeError, match="already exists"):
        auto.save(value, tmp_path / "w.model")
    auto.save([3], tmp_path / "w.model", overwrite=True)
    assert auto.load(tmp_path / "w.model") == [3]
    with pytest.raises(ValueError, match="Not a file"):
        auto.load(tmp_path / "missing.model")
    (tmp_path / "other.pkl").write_bytes(b"")
    with pytest.raises(ValueError, match=r"Not a \.model file"):
        auto.load(tmp_path / "other.pkl")


def test_jax_load_puts_arrays_on_the_cpu(tmp_path):
    jauto.save({"w": jnp.ones(3)}, tmp_path / "a.model")
    loaded = jauto.load(tmp_path / "a.model")["w"]
    assert {d.platform for d in loaded.devices()} == {"cpu"}
