"""Our tokenizers and ``auto`` against upstream's ``models/llm/tokenizer.py`` and ``auto.py``.

Upstream's tokenizers read the vocabulary files of its own checkout (``tok_files/``); ours read
those of registry packages. The files hold the same vocabularies (compared by hash here, never
stored), and on the corpus of ``tests/models/_tokenizer_corpus.py`` (hand-picked cases, seeded
random strings, the text of every World token) each of our tokenizers gives upstream's ids,
decodes upstream's way (byte fallbacks, split characters, unknown ids: same result or same
exception type), pads the same and prints the same. ``auto``: the same table, tokenizer
lookup, dtype rules, cache file names, save/load behaviour, and the same converted params bit
for bit, upstream's ``get_model`` reading the same random checkpoint through its table.

Needs the ``llm`` extra (upstream's tokenizer module imports tokenizers, pyrwkv_tokenizer and
transformers; its auto imports huggingface_hub) besides ``$HYPERSCALEES_SRC``.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import inspect
import io
import json
import shutil
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest
import torch

from _same_api import assert_same_api
from _upstream_llm import load_upstream_llm, rwkv7_state_dict
from conformance.tolerances import assert_tree_parity

for _module, _package in (("tokenizers", "tokenizers"), ("pyrwkv_tokenizer", "pyrwkv-tokenizer"),
                          ("transformers", "transformers"), ("huggingface_hub", "huggingface_hub")):
    pytest.importorskip(_module, reason=f"upstream's tokenizer/auto import `{_package}` (pip install -e '.[llm]')")

import eggroll_torch.models.llm.auto as tauto  # noqa: E402
import jax_reference.models.llm.auto as ours_auto  # noqa: E402
import jax_reference.models.llm.tokenizer as ours  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from _tokenizer_corpus import CASES, LONE_SURROGATES, corpus  # noqa: E402

pytestmark = [pytest.mark.upstream]


def quietly(function, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return function(*args)


def outcome(function, *args):
    """``("ok", result)`` or ``("raises", exception type name)``. BaseException: pyrwkv_tokenizer
    panics raise ``pyo3_runtime.PanicException``, which is not an Exception; its message text
    goes to stderr."""
    try:
        return "ok", function(*args)
    except BaseException as error:  # noqa: B036 - see docstring
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return "raises", type(error).__name__


def sha256_bytes(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sha256_text(path) -> str:
    """Hash of the file read as UTF-8 text with universal newlines (CRLF and LF alike)."""
    return hashlib.sha256(Path(path).read_text(encoding="utf-8").encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def up_llm(hs):
    return load_upstream_llm(hs)


@pytest.fixture(scope="module")
def up_tok(up_llm):
    return quietly(importlib.import_module, f"{up_llm.__name__}.tokenizer")


@pytest.fixture(scope="module")
def up_auto(up_llm, up_tok):
    return quietly(importlib.import_module, f"{up_llm.__name__}.auto")


@pytest.fixture(scope="module")
def tok_files(up_tok):
    return Path(up_tok.__file__).resolve().parents[2] / "tok_files"


@pytest.fixture(scope="module")
def pairs(up_tok):
    """(name, ours, upstream's) for the three tokenizers that need no download."""
    return [
        ("LegacyWorldTokenizer", ours.LegacyWorldTokenizer(), up_tok.LegacyWorldTokenizer()),
        ("WorldTokenizer", ours.WorldTokenizer(), up_tok.WorldTokenizer()),
        ("GptTokenizer", ours.GptTokenizer(), up_tok.GptTokenizer()),
    ]


# --- the vocabulary files ------------------------------------------------------------------------------

def test_world_vocabulary_is_upstreams(tok_files, ledger):
    # rwkv >= 0.8.23 ships the file with CRLF line ends: the same text, not the same bytes.
    assert sha256_text(ours.world_vocab_path()) == sha256_text(tok_files / "rwkv_vocab_v20230424.txt")
    # WorldTokenizer runs pyrwkv_tokenizer over its own copy, byte-identical to upstream's.
    spec = importlib.util.find_spec("pyrwkv_tokenizer")
    pyrwkv_vocab = Path(next(iter(spec.submodule_search_locations)), "rwkv_vocab_v20230424.txt")
    assert sha256_bytes(pyrwkv_vocab) == sha256_bytes(tok_files / "rwkv_vocab_v20230424.txt")
    ledger.cases += 1


def test_gpt_neox_tokenizer_file_is_upstreams(tok_files, ledger):
    assert sha256_bytes(ours.gpt_neox_tokenizer_path()) == sha256_bytes(tok_files / "20B_tokenizer.json")
    ledger.cases += 1


def test_parsed_world_vocabulary_is_upstreams(pairs, ledger):
    _, mine, theirs = pairs[0]
    assert mine.tok.idx2token == theirs.tok.idx2token
    assert mine.tok.token2idx == theirs.tok.token2idx
    ledger.cases += 1


# --- names --------------------------------------------------------------------------------------------

def test_same_names(up_tok, up_auto, ledger):
    assert assert_same_api(up_tok, ours) == 6  # RWKV_TOKENIZER, BaseTokenizer and four tokenizers
    for name, theirs in vars(up_tok).items():
        if inspect.isclass(theirs) and theirs.__module__ == up_tok.__name__:
            for method, function in vars(theirs).items():
                if inspect.isfunction(function):
                    assert_extends(getattr(getattr(ours, name), method), function, f"{name}.{method}")
    for name in ("get_model", "get_tokenizer", "save", "load"):
        assert_extends(getattr(ours_auto, name), getattr(up_auto, name), name)
        assert_extends(getattr(tauto, name), getattr(up_auto, name), name)
    assert ours_auto.suffix == tauto.suffix == up_auto.suffix
    ledger.cases += 1


def assert_extends(mine, theirs, what):
    """``mine`` takes upstream's parameters (names, kinds, defaults) first; any more it has come
    after them and have defaults, so every upstream call works unchanged."""
    mine_params = list(inspect.signature(mine).parameters.values())
    theirs_params = list(inspect.signature(theirs).parameters.values())
    head = [(p.name, p.kind, p.default) for p in mine_params[:len(theirs_params)]]
    assert head == [(p.name, p.kind, p.default) for p in theirs_params], what
    assert all(p.default is not inspect.Parameter.empty for p in mine_params[len(theirs_params):]), what


# --- encode / decode ------------------------------------------------------------------------------------

def test_encode_and_decode_match_on_the_corpus(pairs, ledger):
    texts = corpus()
    for name, mine, theirs in pairs:
        for text in texts:
            ids = theirs.encode(text)
            assert mine.encode(text) == ids, (name, ascii(text))
            assert outcome(mine.decode, ids) == outcome(theirs.decode, ids), (name, ascii(text))
        for text in LONE_SURROGATES:
            assert outcome(mine.encode, text) == outcome(theirs.encode, text), (name, ascii(text))
        ledger.cases += len(texts) + len(LONE_SURROGATES)


def test_every_world_token_text_encodes_as_upstream(pairs, ledger):
    (_, legacy, up_legacy), (_, world, _) = pairs[:2]
    texts = []
    for token in up_legacy.tok.idx2token.values():
        with contextlib.suppress(UnicodeDecodeError):
            texts.append(token.decode("utf-8"))
    expected = [up_legacy.encode(text) for text in texts]
    assert [legacy.encode(text) for text in texts] == expected
    assert [world.encode(text) for text in texts] == expected
    ledger.cases += len(texts)


def fallback_sequences(tokenizer):
    """Id sequences whose bytes are not all valid UTF-8, and ids outside the vocabulary: every
    proper prefix of the encoding of each non-ASCII case (a character split between tokens),
    each single id 1..300, id 0 and ids past the end."""
    sequences = []
    for text in CASES:
        if not text.isascii():
            ids = tokenizer.encode(text)
            sequences += [ids[:k] for k in range(1, len(ids))]
    sequences += [[i] for i in range(1, 301)]
    sequences += [[0], [65529], [65530], [50276], [50277], [50300], [10 ** 6], [129, 130], [200, 201, 202]]
    return sequences


def test_byte_fallbacks_decode_as_upstream(pairs, ledger):
    for name, mine, theirs in pairs:
        sequences = fallback_sequences(theirs)
        with contextlib.redirect_stderr(io.StringIO()):  # pyrwkv_tokenizer's panic messages
            for ids in sequences:
                assert outcome(mine.decode, ids) == outcome(theirs.decode, ids), (name, ids)
                if name == "LegacyWorldTokenizer":
                    assert outcome(mine.tok.decodeBytes, ids) == outcome(theirs.tok.decodeBytes, ids), ids
        ledger.cases += len(sequences)


def test_pad_encode_matches(pairs, ledger):
    for name, mine, theirs in pairs:
        for text in CASES:
            assert mine.pad_encode(text) == theirs.pad_encode(text), (name, ascii(text))
            for alignment in (1, 3, 8, 64):
                assert mine.pad_encode(text, alignment) == theirs.pad_encode(text, alignment), (name, alignment)
        assert outcome(mine.pad_encode, "a", 0) == outcome(theirs.pad_encode, "a", 0)
        ledger.cases += len(CASES) * 5 + 1


def test_print_tokens_matches(pairs, ledger):
    _, mine, theirs = pairs[0]
    for text in ("", "hi 世界 😀", "\xff\x00 spaces   "):
        ids = theirs.encode(text)
        ids = ids + [129] if ids else ids  # a token that is not UTF-8 on its own
        out_mine, out_theirs = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out_mine):
            mine.tok.printTokens(ids)
        with contextlib.redirect_stdout(out_theirs):
            theirs.tok.printTokens(ids)
        assert out_mine.getvalue() == out_theirs.getvalue()
    ledger.cases += 1


def test_qwen_tokenizer_matches(up_tok, tmp_path, monkeypatch, ledger):
    # Upstream names a Hub repo; both read the same local tokenizer directory instead.
    shutil.copy(ours.gpt_neox_tokenizer_path(), tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    auto_tokenizer = up_tok.AutoTokenizer
    local = type("Local", (), {"from_pretrained": staticmethod(lambda name: auto_tokenizer.from_pretrained(
        str(tmp_path)))})
    monkeypatch.setattr(up_tok, "AutoTokenizer", local)
    theirs = quietly(up_tok.QwenTokenizer)
    mine = ours.QwenTokenizer(str(tmp_path))
    for text in CASES:
        ids = theirs.encode(text)
        assert mine.encode(text) == ids and mine.decode(ids) == theirs.decode(ids)
    ledger.cases += len(CASES)


# --- auto -------------------------------------------------------------------------------------------------

def test_model_table_is_upstreams(up_auto, monkeypatch, ledger):
    downloads = []
    monkeypatch.setattr(up_auto, "hf_hub_download", lambda repo_id, filename: downloads.append((repo_id, filename)))
    assert list(ours_auto.models) == list(tauto.models) == list(up_auto.models)
    for name, (module, tokenizer, fetch, config_fn) in up_auto.models.items():
        fetch()
        mine = ours_auto.models[name]
        assert mine[0].__name__.rsplit(".", 1)[1] == module.__name__.rsplit(".", 1)[1] == "rwkv7"
        assert mine[1].__name__ == tokenizer.__name__
        assert (mine[2].repo_id, mine[2].filename) == downloads[-1], name
        assert mine[3] is None and config_fn is None
    ledger.cases += len(up_auto.models)


def test_get_tokenizer_matches(up_auto, ledger):
    for name in ("WorldTokenizer", "GptTokenizer", "QwenTokenizer", "nope"):
        mine, theirs = outcome(ours_auto.get_tokenizer, name), outcome(up_auto.get_tokenizer, name)
        assert mine[0] == theirs[0]
        assert mine[1] == theirs[1] if mine[0] == "raises" else mine[1].__name__ == theirs[1].__name__
    ledger.cases += 4


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(rwkv7_state_dict(3, 2, 2, 4, 13), path)
    return path


@pytest.mark.parametrize("dtype, rwkv_type", [
    (None, "BaseRWKV"), ("float32", "ScanRWKV"), ("float16", "BaseRWKV"), ("bfloat16", "FastRWKV"),
    (jnp.float32, "AssociativeScanRWKV"),
])
def test_get_model_matches(up_auto, checkpoint, tmp_path, monkeypatch, ledger, dtype, rwkv_type):
    name = "7g0.1B"
    rwkv, tokenizer, _, config_fn = up_auto.models[name]
    monkeypatch.setitem(up_auto.models, name, (rwkv, tokenizer, lambda: str(checkpoint), config_fn))
    monkeypatch.setattr(up_auto, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setitem(ours_auto.models, name, (*ours_auto.models[name][:2], lambda: str(checkpoint), None))
    up_out, our_out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(up_out):
        up_RWKV, theirs, up_tokenizer = up_auto.get_model(name, dtype, rwkv_type, True)
    with contextlib.redirect_stdout(our_out):
        RWKV, mine, tokenizer = ours_auto.get_model(name, dtype, rwkv_type, True, cache_dir=tmp_path / "ours")
    assert RWKV.__name__ == up_RWKV.__name__ == rwkv_type
    assert type(tokenizer).__name__ == type(up_tokenizer).__name__
    ledger.record(assert_tree_parity(mine, theirs, "bits", what=f"get_model {dtype} {rwkv_type}"))
    # The same dtype line and cache file name (upstream's load_from_torch prints progress too).
    up_lines, our_lines = up_out.getvalue().splitlines(), our_out.getvalue().splitlines()
    assert our_lines[0] == up_lines[0]
    assert [Path(line).name for line in our_lines[1:]] == \
           [Path(line).name for line in up_lines[1:] if line.startswith(("saving to ", "loading from "))]
    # Cached: both read their file back.
    with contextlib.redirect_stdout(io.StringIO()):
        assert_tree_parity(ours_auto.get_model(name, dtype, rwkv_type, cache_dir=tmp_path / "ours")[1],
                           up_auto.get_model(name, dtype, rwkv_type)[1], "bits")
    if not isinstance(dtype, type):  # the torch side takes torch dtypes, and the same strings
        torch_params = tauto.get_model(name, dtype, rwkv_type, checkpoint=checkpoint)[1]
        ledger.record(assert_tree_parity(torch_params, theirs, "bits", what=f"torch get_model {dtype}"))
    ledger.cases += 1


def test_save_and_load_match(up_auto, tmp_path, ledger):
    def run(auto, root):
        steps = [
            outcome(auto.save, {"a": 1}, root / "x.pth"),
            sorted(p.name for p in root.iterdir()),
            outcome(auto.save, {"a": 2}, root / "x.model"),
            outcome(auto.save, {"a": 3}, root / "x.model", True),
            outcome(auto.load, root / "x.model"),
            outcome(auto.load, root / "missing.model"),
            outcome(auto.load, root / "x.pth"),
        ]
        (root / "y.txt").write_text("")
        return steps + [outcome(auto.load, root / "y.txt")]

    expected = run(up_auto, tmp_path / "up")
    assert run(ours_auto, tmp_path / "ours") == expected
    assert run(tauto, tmp_path / "torch") == expected
    ledger.cases += 1


def test_qrwkv6_is_in_versions(up_auto, ledger):
    for auto in (ours_auto, tauto):
        try:
            versions = auto.versions
        except ImportError:
            pytest.skip(f"{auto.__package__}.qrwkv6 is not there (yet)")
        assert sorted(versions) == sorted(up_auto.versions)
    ledger.cases += 1
