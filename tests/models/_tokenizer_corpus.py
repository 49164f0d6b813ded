"""Strings the tokenizer tests encode, shared by ``tests/models/test_tokenizer.py`` and
``tests/upstream/test_tokenizer_identity.py``.

:data:`CASES` are chosen by hand (whitespace runs, non-ASCII scripts, emoji sequences, combining
marks, control characters, the ends of Unicode, strings built to stress longest match);
:func:`random_strings` adds seeded mixtures of all of them. :data:`LONE_SURROGATES` cannot be
encoded as UTF-8 at all.
"""
from __future__ import annotations

import random

CASES = [
    "",
    " ",
    "a",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    # whitespace runs (the World vocabulary has tokens of up to 128 spaces)
    "  ", "   ", " " * 16, " " * 127, " " * 128, " " * 129, " " * 300,
    "\t", "\t\t\t", "\n", "\n\n\n\n", "\r\n", "\r\n\r\n", "\r", " \t \n \r\n ",
    "line one\nline two\n\n  indented\n\tTabbed",
    "trailing spaces   ", "   leading spaces", "a  b   c    d",
    "\u00a0\u2003\u3000\u200b",  # no-break, em, ideographic, zero-width spaces
    # scripts
    "héllo wörld çà ñ ß Œ",
    "世界你好，今天是美好的一天。",
    "日本語のテキスト、カタカナとひらがな。",
    "한국어 문장입니다.",
    "Привет, мир! Съешь же ещё этих мягких французских булок.",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Tiếng Việt có dấu",
    # combining marks, decomposed forms
    "e\u0301", "a\u0300\u0301\u0302\u0303", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334",
    "n\u0303o\u0308", "\u1100\u1161\u11a8",
    # emoji: single, skin tones, ZWJ families, flags, keycaps, variation selectors
    "😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵🇺🇸", "1️⃣", "❤️", "☺\ufe0e", "🫠🦀🐍",
    # control characters and the ends of Unicode
    "\x00", "\x00\x01\x02\x1f\x7f", "\x80\x9f", "\ufeffBOM", "\ufffd", "\uffff", "\U00010000",
    "\U0010ffff", "\U000e0001\U000e0041",
    # code and markup
    "def f(x):\n    return x ** 2  # square\n",
    '{"key": [1, 2.5, null], "s": "\\u00e9"}',
    "<|endoftext|>", "<s></s><pad>", "User: hi\n\nAssistant:",
    # longest-match stress: prefixes of long tokens, repeats
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "----------------------------------------------------------------",
    "================================================================",
    "internationalization", "antidisestablishmentarianism", "the the the the",
    "0123456789" * 5, "3.14159265358979323846", "1,000,000.00",
]

LONE_SURROGATES = ["\ud800", "a\udfffb", "\udc80\udc81", "ok\ud83d"]

# Code point pools random_strings draws from, weighted towards what tokenizers find hard.
_POOLS = [
    (0x20, 0x7E), (0x09, 0x0D), (0xA0, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
    (0x590, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x3040, 0x30FF), (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3), (0x2000, 0x206F), (0xFE00, 0xFE0F), (0x1F300, 0x1FAFF), (0x10000, 0x10FFFF),
]


def random_strings(n: int = 300, seed: int = 0, max_len: int = 48) -> list[str]:
    """``n`` seeded strings of 0 to ``max_len`` code points from the pools above (never a
    surrogate), some with a run of one repeated character."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chars = []
        for _ in range(rng.randint(0, max_len)):
            low, high = rng.choice(_POOLS)
            chars.append(chr(rng.randint(low, high)))
        if chars and rng.random() < 0.2:
            chars.insert(rng.randrange(len(chars)), rng.choice(chars) * rng.randint(2, 40))
        out.append("".join(chars))
    return out


def corpus() -> list[str]:
    """:data:`CASES` followed by :func:`random_strings` and every case concatenated into one."""
    return CASES + random_strings() + ["".join(CASES)]
