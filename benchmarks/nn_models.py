"""The real-network workloads of the trainer benchmarks, as plain ``nn.Module`` code a user writes.

- :class:`BlockModel`: pre-LayerNorm residual MLP blocks (``x + fc2(gelu(fc1(ln(x))))``, width
  ``d -> 4d -> d``) and a linear head; fitness: the mean output.
- :class:`GPT`: a GPT-style decoder (token and position embeddings, pre-LayerNorm blocks of
  causal self-attention through ``F.scaled_dot_product_attention`` and an MLP, a final
  LayerNorm, a head tied to the token embedding or not); fitness: the mean log-likelihood of
  fixed tokens.
- :class:`SquareStack`: the stack workloads' ``L`` square bias-free layers with tanh between.

Nothing here knows about EGGROLL: the trainer receives these modules unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MLPBlock(nn.Module):
    """``x + fc2(gelu(fc1(ln(x))))``."""

    def __init__(self, width: int):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x):
        return x + self.fc2(F.gelu(self.fc1(self.ln(x))))


class BlockModel(nn.Module):
    """``blocks`` :class:`MLPBlock` of width ``width`` and a ``width -> width`` linear head."""

    def __init__(self, width: int, blocks: int = 2):
        super().__init__()
        self.blocks = nn.Sequential(*(MLPBlock(width) for _ in range(blocks)))
        self.head = nn.Linear(width, width)

    def forward(self, x):
        return self.head(self.blocks(x))


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one ``d -> 3d`` projection, SDPA, a ``d -> d`` projection."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=-1)
        q, k, v = (t.view(batch, tokens, self.heads, width // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, tokens, width))


class DecoderBlock(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(width)
        self.attn = CausalSelfAttention(width, heads)
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class GPT(nn.Module):
    """Decoder over ``vocab`` tokens; ``forward(tokens (B, T))`` gives logits ``(B, T, vocab)``."""

    def __init__(self, vocab: int, width: int, layers: int, heads: int, context: int, tied: bool = True):
        super().__init__()
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(context, width)
        self.blocks = nn.Sequential(*(DecoderBlock(width, heads) for _ in range(layers)))
        self.ln = nn.LayerNorm(width)
        self.tied = tied
        self.head = None if tied else nn.Linear(width, vocab, bias=False)

    def forward(self, tokens):
        positions = torch.arange(tokens.shape[-1], device=tokens.device)
        h = self.ln(self.blocks(self.tokens(tokens) + self.positions(positions)))
        return F.linear(h, self.tokens.weight) if self.tied else self.head(h)


def log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean log-probability of ``targets`` ``(..., T)`` under ``logits`` ``(..., T, V)``, in float32,
    one value per leading index."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).flatten(1).mean(1)


class SquareStack(nn.Module):
    """``layers`` square bias-free linear layers of width ``width``, tanh between them."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, bias=False) for _ in range(layers))

    def forward(self, x):
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index < len(self.layers) - 1:
                x = torch.tanh(x)
        return x
