"""Per-member token generation with EGGROLL noise (upstream's ``llm_experiments/utils.py``).

A member (thread) ``i`` at epoch ``e`` reads its prompt one token per step, carrying the model's
recurrent state: wherever the prompt holds token 0 it is fed its own previous sample instead
(the first step's "previous sample" is 0). Its output row is what it was fed, so prompt tokens
come back unchanged and every 0 is replaced by a sampled token. The sampling key of step ``t`` is
the second half of the ``t``-th split of ``fold_in(fold_in(master_gen_key, e), i)``; the model
runs with ``iterinfo = (e, i)``, so the member's noise is the one the update later credits.

Upstream wraps the batch in ``shard_map`` over a ``'data'`` mesh and marks the carry as varying
over it; on one device that changes no number, and :func:`build_generate_batch` runs
``jit(vmap(...))`` directly.
"""
import jax
import jax.numpy as jnp

from jax_reference.environments.llm_bandits import safe_decode
from jax_reference.noiser.base_noiser import Noiser

__all__ = ["build_generate_batch", "build_generate_thread", "build_validate", "fold_in_helper", "safe_decode",
           "sample_token"]


def fold_in_helper(key, epoch, true_thread_idx):
    """The generation key of one member: ``fold_in(fold_in(key, epoch), true_thread_idx)``."""
    return jax.random.fold_in(jax.random.fold_in(key, epoch), true_thread_idx)


def sample_token(key, logits, temperature):
    """One token from ``logits (V,)``: ``jax.random.categorical(key, logits / temperature)``, or
    the first argmax when ``temperature == 0``. ``temperature`` is a Python float; the division
    is in the logits' dtype."""
    if temperature != 0.0:
        return jax.random.categorical(key, logits / temperature)
    return jnp.argmax(logits)


def build_generate_thread(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys, master_gen_key,
                          temperature=1.0):
    """``generate_thread(noiser_params, params, prompt, thread_idx, epoch_num) -> tokens``.

    ``prompt``: ``(T,)`` int32 (0 where the member samples); ``tokens``: ``(T,)`` int32, the token
    fed at each step (see the module docstring). ``temperature`` 0 is greedy decoding.
    """
    def forward_and_sample(noiser_params, params, input_token, input_state, generation_key, iterinfo):
        gen_key, sample_key = jax.random.split(generation_key)
        logits, state = MODEL.forward(NOISER, frozen_noiser_params, noiser_params, config, params, base_evo_keys,
                                      iterinfo, input_token, input_state)
        return sample_token(sample_key, logits[-1], temperature), state, gen_key

    def generate_thread(noiser_params, params, prompt, thread_idx, epoch_num):
        iterinfo = (epoch_num, thread_idx)

        def step(carry, prompt_token):
            previous, state, gen_key = carry
            fed = jnp.where(prompt_token == 0, previous, prompt_token)
            sampled, state, gen_key = forward_and_sample(noiser_params, params, fed, state, gen_key, iterinfo)
            return (sampled, state, gen_key), fed

        start = (jnp.zeros((), jnp.int32), MODEL.default_state(params, config),
                 fold_in_helper(master_gen_key, epoch_num, thread_idx))
        return jax.lax.scan(step, start, prompt)[1]

    return generate_thread


def build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys, master_gen_key,
                         temperature=1.0):
    """``generate_batch(noiser_params, params, prompts, thread_idxs, epoch_num) -> tokens``, jitted:
    :func:`build_generate_thread` vmapped over ``prompts (B, T)`` and ``thread_idxs (B,)``;
    ``tokens (B, T)`` int32."""
    thread = build_generate_thread(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys, master_gen_key,
                                   temperature)
    return jax.jit(jax.vmap(thread, in_axes=(None, None, 0, 0, None)))


def build_validate(MODEL, config, params_example, base_evo_keys, master_gen_key, validation_task,
                   parallel_validations, validation_iterations, temperature=1.0, NOISER=Noiser, sigma=0.0):
    """``validate(params, epoch) -> mean fitness`` of the unperturbed model on ``validation_task``.

    Iteration ``i`` generates for the prompt indices ``i * parallel_validations + arange(
    parallel_validations)``, which also serve as thread ids (so as the generation keys' data);
    the score is the mean fitness over all ``parallel_validations * validation_iterations``
    generations. ``NOISER`` (default the no-op noiser) is initialised at ``sigma`` and learning
    rate 0. Upstream reads the task and sizes from its argument namespace; here they are
    arguments.
    """
    frozen_noiser_params, noiser_params = NOISER.init_noiser(params_example, sigma, 0.0)
    generate_batch = build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys,
                                          master_gen_key, temperature)

    def validate(params, epoch):
        # A float32 running sum, as upstream accumulates it.
        total = jnp.zeros((), jnp.float32)
        for i in range(validation_iterations):
            indices = jnp.arange(parallel_validations) + i * parallel_validations
            outputs = generate_batch(noiser_params, params, validation_task.get_input(indices), indices, epoch)
            total = total + jnp.sum(validation_task.get_batch_fitness(indices, outputs))
        return total / (parallel_validations * validation_iterations)

    return validate
