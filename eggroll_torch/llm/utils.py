"""Token generation for a whole population at once (``jax_reference.llm.utils``'s mirror).

Every member (thread id ``i``, epoch ``e``) generates exactly as its JAX counterpart: it reads its
prompt one token per step with the recurrent state carried, is fed its own previous sample where
the prompt holds 0 (0 at the first step), returns what it was fed, samples step ``t`` with the
second half of the ``t``-th split of ``fold_in(fold_in(master_gen_key, e), i)``, and runs with
``iterinfo = (e, i)``. Here the members are not vmapped: one population forward per step feeds
all ``B`` members ``(B, 1)`` tokens and carries a ``(B, ...)`` state, so each step is one batched
matmul per weight plus each member's rank-``r`` noise terms.
"""
from __future__ import annotations

import torch

from eggroll_torch import random as es_random
from eggroll_torch.environments.llm_bandits import safe_decode
from eggroll_torch.noiser.base_noiser import Noiser

from .noise_cache import caching_noiser

__all__ = ["build_generate_batch", "build_validate", "fold_in_helper", "safe_decode", "sample_token"]


def fold_in_helper(key: torch.Tensor, epoch, true_thread_idx) -> torch.Tensor:
    """``fold_in(fold_in(key, epoch), true_thread_idx)``; ``true_thread_idx`` may be a ``(B,)``
    tensor, giving ``(B, 2)`` keys."""
    return es_random.fold_in(es_random.fold_in(key, epoch), true_thread_idx)


def sample_token(keys: torch.Tensor, logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """One token per row of ``logits (B, V)`` with its own key of ``keys (B, 2)``: JAX's
    ``categorical(key, logits / temperature)`` (Gumbel noise in the logits' dtype, first argmax),
    or the first argmax when ``temperature == 0``. The division is in the logits' dtype, as JAX
    divides by a weakly typed Python float. Returns ``(B,)`` int32."""
    if temperature == 0.0:
        return torch.argmax(logits, dim=-1).to(torch.int32)
    scaled = logits / torch.tensor(temperature, dtype=logits.dtype, device=logits.device)
    noise = es_random.gumbel(keys, (logits.shape[-1],), logits.dtype)
    return torch.argmax(noise + scaled, dim=-1).to(torch.int32)


def _check_batch(prompts, thread_idxs):
    if not isinstance(prompts, torch.Tensor) or prompts.ndim != 2:
        raise ValueError(f"prompts must be a (B, T) integer tensor; got {getattr(prompts, 'shape', type(prompts))}")
    if not isinstance(thread_idxs, torch.Tensor) or thread_idxs.shape != prompts.shape[:1]:
        raise ValueError(
            f"thread_idxs must be a ({prompts.shape[0]},) tensor, one thread id per prompt row; "
            f"got {getattr(thread_idxs, 'shape', type(thread_idxs))}")


def build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys, master_gen_key,
                         temperature=1.0):
    """``generate_batch(noiser_params, params, prompts, thread_idxs, epoch_num) -> tokens``.

    ``prompts (B, T)`` integer (0 where the member samples), ``thread_idxs (B,)``, ``epoch_num``
    an int; ``tokens (B, T)`` int32 on the params' device. ``temperature`` 0 is greedy decoding.
    Each member's noise is drawn once per call (:mod:`.noise_cache`), not once per token.
    """
    noiser = caching_noiser(NOISER)

    def generate_batch(noiser_params, params, prompts, thread_idxs, epoch_num):
        _check_batch(prompts, thread_idxs)
        device = master_gen_key.device
        prompts = prompts.to(device=device, dtype=torch.int32)
        thread_idxs = thread_idxs.to(device)
        n_members, n_steps = prompts.shape
        iterinfo = (torch.full((n_members,), int(epoch_num), dtype=torch.int32, device=device), thread_idxs)
        keys = fold_in_helper(master_gen_key, int(epoch_num), thread_idxs)
        one = MODEL.default_state(params, config)
        state = one.expand(n_members, *one.shape)
        previous = torch.zeros((n_members,), dtype=torch.int32, device=device)
        fed = torch.empty_like(prompts)
        with torch.no_grad(), noiser.noise_cache():
            for t in range(n_steps):
                fed[:, t] = torch.where(prompts[:, t] == 0, previous, prompts[:, t])
                split = es_random.split(keys)
                keys = split[:, 0]
                logits, state = MODEL.forward(noiser, frozen_noiser_params, noiser_params, config, params,
                                              base_evo_keys, iterinfo, fed[:, t:t + 1], state)
                previous = sample_token(split[:, 1], logits[:, -1], temperature)
        return fed

    return generate_batch


def build_validate(MODEL, config, params_example, base_evo_keys, master_gen_key, validation_task,
                   parallel_validations, validation_iterations, temperature=1.0, NOISER=Noiser, sigma=0.0):
    """``validate(params, epoch) -> mean fitness`` (a 0-d float32 tensor) of the unperturbed model,
    as ``jax_reference.llm.utils.build_validate``: prompt indices ``i * parallel_validations +
    arange(parallel_validations)`` of iteration ``i`` double as thread ids, and the fitnesses are
    summed in float32."""
    frozen_noiser_params, noiser_params = NOISER.init_noiser(params_example, sigma, 0.0)
    generate_batch = build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys,
                                          master_gen_key, temperature)

    def validate(params, epoch):
        total = torch.zeros((), dtype=torch.float32)
        for i in range(validation_iterations):
            indices = torch.arange(parallel_validations) + i * parallel_validations
            prompts = torch.as_tensor(validation_task.get_input(indices))
            outputs = generate_batch(noiser_params, params, prompts, indices, epoch)
            fitness = torch.as_tensor(validation_task.get_batch_fitness(indices, outputs.cpu()), dtype=torch.float32)
            total = total + fitness.sum()
        return total / (parallel_validations * validation_iterations)

    return validate
