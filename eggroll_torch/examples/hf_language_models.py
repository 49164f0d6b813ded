"""EGGROLL on Hugging Face ``transformers`` language models, through :class:`EggrollTrainer` unchanged.

A GPT-2 (its projections are ``transformers``' ``Conv1D``, stored ``(in, out)``) or a Llama-style
decoder (``nn.Linear`` projections, RMSNorm, rotary embeddings, grouped-query attention) is
built locally from a small config with random weights (nothing is downloaded) and evolved to
raise the mean log-likelihood of a fixed token sequence that cycles through a few tokens. Every
projection matrix gets low-rank noise by default (see :mod:`eggroll_torch.nn.es_classes`); the
embeddings are ``EMB_PARAM``.

Run: ``python -m eggroll_torch.examples.hf_language_models --model gpt2 --generations 20``
(needs the ``hf`` extra: ``pip install -e '.[hf]'``).
"""
from __future__ import annotations

import argparse
from typing import NamedTuple

import torch
from torch import nn

from ..nn import EggrollTrainer

MODELS = ("gpt2", "llama")


class CausalLMLogits(nn.Module):
    """``input_ids`` ``(B, T)`` -> logits ``(B, T, vocab)`` of a ``transformers`` causal LM."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits


def build_model(name: str, *, vocab: int = 64, width: int = 32, layers: int = 2, seed: int = 0) -> CausalLMLogits:
    """A small randomly initialised ``transformers`` model ``name`` (``"gpt2"`` or ``"llama"``), in
    eval mode (dropout off) and float32."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    import transformers

    torch.manual_seed(seed)
    if name == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=width, n_layer=layers, n_head=2,
                                         n_positions=64, bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
    else:
        config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=2 * width,
                                          num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                          max_position_embeddings=64, bos_token_id=0, eos_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    return CausalLMLogits(model.eval())


def mean_log_likelihood(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Each member's mean log-probability of ``tokens[:, 1:]`` given the prefix:
    logits ``(N, B, T, vocab)``, tokens ``(B, T)`` -> ``(N,)``."""
    log_probs = torch.log_softmax(logits[..., :-1, :].float(), dim=-1)
    targets = tokens[:, 1:].expand(logits.shape[0], -1, -1).unsqueeze(-1)
    return log_probs.gather(-1, targets).mean(dim=(1, 2, 3))


def cycling_tokens(length: int, period: int = 4) -> torch.Tensor:
    """``(1, length)`` tokens ``0, 1, .., period - 1, 0, 1, ..``: a target a random model scores at
    about chance and that evolution can learn within a few generations."""
    return (torch.arange(length) % period).unsqueeze(0)


class Run(NamedTuple):
    """``fitness_mean[g]``: the population's mean fitness in generation ``g``; ``trainer``: the
    trainer after the last generation."""

    fitness_mean: list
    trainer: EggrollTrainer


def train(name: str = "gpt2", generations: int = 20, *, population_size: int = 16, rank: int = 4,
          sigma: float = 0.01, lr: float = 0.05, tokens: int = 16, seed: int = 0) -> Run:
    """Evolve model ``name`` for ``generations`` generations; returns the mean fitness of each."""
    model = build_model(name, seed=seed)
    sequence = cycling_tokens(tokens)
    trainer = EggrollTrainer(model, sigma, lr, population_size=population_size, rank=rank, seed=seed)
    history = []
    for _ in range(generations):
        metrics = trainer.step(lambda population: mean_log_likelihood(population(sequence, in_dims=None), sequence))
        history.append(float(metrics["fitness_mean"]))
    return Run(history, trainer)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="gpt2")
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--population-size", type=int, default=16)
    args = parser.parse_args(argv)
    run = train(args.model, args.generations, population_size=args.population_size)
    for generation, fitness in enumerate(run.fitness_mean):
        print(f"generation {generation:3d}  mean log-likelihood {fitness:.4f}")


if __name__ == "__main__":
    main()
