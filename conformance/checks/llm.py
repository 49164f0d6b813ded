"""Upstream's LLM fine-tuning loop (``llm_experiments``): token sampling, per-member generation,
the bandit tasks' fitness and whole ES epochs of a small random RWKV-7.

Every case runs in float32 except the sampling of bfloat16 logits. Tokens and fitnesses must be
identical ("bits"): one flipped token changes every later step of that member. The parameters
after the epochs' updates are held to the trajectory tolerance.
"""
from __future__ import annotations

import numpy as np

from .. import inputs
from ..adapters import base as caps
from ._common import requires
from .base import Case, Check, register

COMPONENT = "LLM fine-tuning"
# The loop's model: RWKV-7 with 2 layers of 2 heads of size 4 and a vocabulary of 24, so that
# sampled tokens hit 0 (FastZero's stop token) and repeat (RepTok) within 32 steps.
LLM_SHAPE, LLM_VOCAB = (2, 2, 4), 24


def _checkpoint(seed: int) -> dict:
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict

    state_dict = rwkv7_state_dict(seed, *LLM_SHAPE, LLM_VOCAB, lora_dims=(4, 4, 2, 4))
    return {name: tensor.numpy() for name, tensor in state_dict.items()}


def _evolution(**overrides) -> dict:
    """``EvolutionConfig`` fields (both sides' dataclasses take them as keywords)."""
    return {"seed": 0, "generation_length": 32, "parallel_generations": 8, "generations_per_prompt": 2,
            "sigma": 0.05, "lr_scale": 0.1, "noise_reuse": 1, "freeze_nonlora": True, "rank": 1,
            "temperature": 1.0, "noiser": "eggroll", "validate_every": 0} | overrides


def sampling_case(case_id: str, dtype: str, temperature: float, vocab: int = 50, rows: int = 64) -> Case:
    keys = np.stack([inputs.key(f"{case_id}:{i}") for i in range(rows)])
    logits = inputs.normal(case_id + ":logits", (rows, vocab)) * 3
    return Case(case_id, {"keys": keys, "logits": logits, "dtype": dtype, "temperature": temperature},
                requires(None, dtype, extra={caps.LLM_LOOP}))


def loop_case(case_id: str, task: str, epochs: int, variant: str = "ScanRWKV", **overrides) -> Case:
    return Case(case_id, {"config": _evolution(**overrides), "model": {"variant": variant, "dtype": "float32"},
                          "checkpoint": _checkpoint(len(case_id)), "task": task, "epochs": epochs},
                requires(None, "float32", extra={caps.LLM_LOOP}))


class _LLMCheck(Check):
    component = COMPONENT
    requires = frozenset({caps.LLM_LOOP})
    default_kind = "bits"


class _LoopCheck(_LLMCheck):
    rng = True

    def compute(self, adapter, case, noise=None):
        return adapter.llm_evolution(case["config"], case["model"], case["checkpoint"], case["task"],
                                     case["epochs"])


@register
class Sampling(_LLMCheck):
    id = "llm.sampling"
    impact = "high"
    summary = ("one token per member from its own key: jax.random.categorical(key, logits / temperature) "
               "(Gumbel noise in the logits' dtype, first argmax), greedy argmax at temperature 0")
    rng = True

    def cases(self, profile):
        return [
            sampling_case("float32-t1", "float32", 1.0),
            sampling_case("float32-t0.7", "float32", 0.7),
            sampling_case("float32-greedy", "float32", 0.0),
            sampling_case("bfloat16-t1", "bfloat16", 1.0),
            sampling_case("bfloat16-t0.7-vocab1000", "bfloat16", 0.7, vocab=1000, rows=16),
        ]

    def compute(self, adapter, case, noise=None):
        return adapter.llm_sampling(case["keys"], case["logits"], case["dtype"], case["temperature"])


@register
class Generation(_LoopCheck):
    id = "llm.generation"
    impact = "high"
    summary = ("epoch 0's generations of every member, 32 tokens each: prompt tokens fed as given, 0s replaced "
               "by the member's previous sample, keys fold_in(fold_in(gen_key, epoch), thread), EGGROLL noise")

    def cases(self, profile):
        # Each case compiles a JAX generation loop (about 15 s on a 2-core machine): two cover
        # sampling and greedy decoding, both forward variants in use and ranks 1 and 2.
        return [
            loop_case("fastzero-t1", "fastzero", 0),
            loop_case("reptok-greedy-rank2-BaseRWKV", "reptok", 0, variant="BaseRWKV", temperature=0.0, rank=2,
                      sigma=0.3),
        ]


@register
class TaskFitness(_LLMCheck):
    id = "llm.task_fitness"
    impact = "medium"
    summary = ("the toy bandit tasks' prompts and rewards (FastZero, UniqueTok, RepTok) of fixed token rows, "
               "rows with and without 0s")

    def cases(self, profile):
        g = inputs.rng("llm.task_fitness")
        tokens = g.integers(0, 6, (12, 16)).astype(np.int32)
        tokens[:3] = np.maximum(tokens[:3], 1)
        indices = np.arange(12, dtype=np.int32)
        return [Case(task, {"task": task, "indices": indices, "tokens": tokens},
                     requires(None, extra={caps.LLM_LOOP})) for task in ("fastzero", "uniquetok", "reptok")]

    def compute(self, adapter, case, noise=None):
        return adapter.llm_task_fitness(case["task"], case["indices"], case["tokens"])


@register
class EsEpoch(_LoopCheck):
    id = "llm.es_epoch"
    impact = "high"
    summary = ("3 epochs of the loop: prompts repeated per member, generation, fitness, group-normalised "
               "convert_fitnesses and do_updates with (full(N, epoch), arange(N)); tokens and fitnesses each epoch, "
               "params after each update")
    output_kinds = {"params/": "trajectory"}

    def cases(self, profile):
        return [loop_case("uniquetok-t0.7-nonlora-rank2", "uniquetok", 3, temperature=0.7, rank=2,
                          freeze_nonlora=False)]
