"""A stand-in tokenizer and generators of token arrays for the LLM bandit task tests.

The tasks only need ``encode(str) -> list[int]`` and ``decode(int array) -> str`` (see
``eggroll_torch.environments.bandit_text``). :class:`PieceTokenizer` is a byte-level tokenizer
with a few multi-character pieces (``</think>``, ``####``, digits runs, ...) so that random token
rows often contain what the scorers look for. Its ids: 0 is the stop token (decoding it raises),
``1 + b`` is the byte ``b``, then the pieces; ids past the vocabulary, negative ids and byte
sequences that are not UTF-8 raise ``ValueError``, which the tasks score as an empty text.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
GSM8K_TINY = DATA / "gsm8k_tiny.jsonl"
AIME_TINY = DATA / "aime_tiny.jsonl"

PIECES = ("</think>", "<think", "####", "User: ", "Assistant: ", "The answer is ", "$", "0", "18", "315", "180",
          "-2", "1", "3.2", "1,000", "42.", " ", "\n", "x", "²", "①", ".", ",", "-", "#")


class PieceTokenizer:
    """Byte-level tokenizer with :data:`PIECES` as extra tokens (greedy longest match)."""

    def __init__(self, pieces=PIECES):
        self.vocab = [b""] + [bytes([b]) for b in range(256)] + [p.encode() for p in pieces]
        self.ids = {piece: i for i, piece in enumerate(self.vocab) if i > 0}
        self.longest = max(len(p) for p in self.vocab)

    def encode(self, text: str) -> list[int]:
        data, out, i = text.encode(), [], 0
        while i < len(data):
            size = next(n for n in range(min(self.longest, len(data) - i), 0, -1) if data[i:i + n] in self.ids)
            out.append(self.ids[data[i:i + size]])
            i += size
        return out

    def decode(self, tokens) -> str:
        ids = [int(t) for t in tokens]
        if any(t <= 0 or t >= len(self.vocab) for t in ids):
            raise ValueError(f"undecodable token id in {ids}")
        return b"".join(self.vocab[t] for t in ids).decode("utf-8")

    @property
    def invalid_byte(self) -> int:
        """The id of the lone byte 0x80, which is never valid UTF-8 by itself."""
        return 1 + 0x80


def random_generations(rng: np.random.Generator, tokenizer: PieceTokenizer, batch: int, length: int,
                       prefix: list[int] | None = None) -> np.ndarray:
    """``(batch, length)`` int32 token rows: ``prefix`` (e.g. an encoded prompt), then random ids
    drawn mostly from the pieces, with stop tokens, an invalid byte, an out-of-vocabulary id and
    random bytes mixed in."""
    prefix = list(prefix or [])[:length]
    pieces = [tokenizer.ids[p.encode()] for p in PIECES]
    specials = [0, tokenizer.invalid_byte, len(tokenizer.vocab) + 7]
    rows = np.empty((batch, length), dtype=np.int32)
    for b in range(batch):
        kind = rng.random(length - len(prefix))
        draw = np.where(kind < 0.75, rng.choice(pieces, kind.size), rng.integers(1, 257, kind.size))
        draw = np.where(kind > 0.97, rng.choice(specials, kind.size), draw)
        rows[b] = prefix + draw.tolist()
    return rows
