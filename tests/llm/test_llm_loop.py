"""eggroll_torch.llm against jax_reference.llm: sampling, generation, fitness and updates.

Both sides load the same small random RWKV-7 and run the same EvolutionConfig; the torch loop
runs the population at once (with each member's noise drawn once per generation), the reference
vmaps members. Tokens and fitnesses must be identical, parameters within the trajectory
tolerance.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import eggroll_torch.llm as tl
import jax_reference.llm as jl
from conformance.tolerances import assert_parity
from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.environments.llm_bandits import all_tasks as torch_tasks
from eggroll_torch.llm.noise_cache import caching_noiser
from eggroll_torch.models.llm import rwkv7 as trwkv7
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
from eggroll_torch.noiser.eggroll import EggRoll
from jax_reference.environments.llm_bandits import all_tasks as jax_tasks
from jax_reference.models.llm import rwkv7 as jrwkv7

BASE = {"generation_length": 10, "parallel_generations": 8, "generations_per_prompt": 2, "sigma": 0.05,
        "lr_scale": 0.1, "validate_every": 0}


def _state_dict():
    return rwkv7_state_dict(5, 2, 2, 4, 20, lora_dims=(4, 4, 2, 4))


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_sample_token_matches_jax(dtype, temperature):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((64, 50)).astype(np.float32) * 3
    words = rng.integers(0, 2**32, (64, 2), dtype=np.uint64).astype(np.uint32)
    expected = jax.vmap(lambda k, lg: jl.sample_token(k, lg, temperature))(
        jax.random.wrap_key_data(jnp.asarray(words)), jnp.asarray(logits, dtype=dtype))
    got = tl.sample_token(es_random.wrap_key_data(words), torch.from_numpy(logits).to(getattr(torch, dtype)),
                          temperature)
    assert got.dtype == torch.int32
    np.testing.assert_array_equal(got.numpy(), np.asarray(expected))
    assert len(set(got.tolist())) > 10


def _runs(task, epochs, **overrides):
    kw = BASE | overrides
    dtype = kw.pop("dtype", "float32")
    jinit = jrwkv7.ScanRWKV.load_from_torch(_state_dict(), None, getattr(jnp, dtype))
    tinit = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, getattr(torch, dtype))
    ours = tl.Evolution(trwkv7.ScanRWKV, tinit, torch_tasks[task](None, None, kw["generation_length"]),
                        tl.EvolutionConfig(**kw))
    ref = jl.Evolution(jrwkv7.ScanRWKV, jinit, jax_tasks[task](None, None, kw["generation_length"]),
                       jl.EvolutionConfig(**kw))
    results = []
    a, b = (ours.noiser_params, ours.params), (ref.noiser_params, ref.params)
    for epoch in range(epochs):
        mine, theirs = ours.single_epoch(*a, epoch), ref.single_epoch(*b, epoch)
        a, b = (mine.noiser_params, mine.params), (theirs.noiser_params, theirs.params)
        results.append((mine, theirs))
    return results


@pytest.mark.parametrize("task,overrides", [
    ("fastzero", {"temperature": 1.0}),
    ("uniquetok", {"temperature": 0.0, "rank": 2, "freeze_nonlora": False}),
])
def test_epochs_match_reference(task, overrides):
    for epoch, (mine, theirs) in enumerate(_runs(task, 2, **overrides)):
        np.testing.assert_array_equal(mine.tokens.numpy(), np.asarray(theirs.tokens), err_msg=f"epoch {epoch} tokens")
        np.testing.assert_array_equal(mine.fitness.numpy(), np.asarray(theirs.fitness), err_msg=f"epoch {epoch}")
        np.testing.assert_array_equal(mine.indices.numpy(), np.asarray(theirs.indices))
        for got, want in zip(tree.leaves(mine.params), jax.tree.leaves(theirs.params)):
            assert_parity(got.numpy(), np.asarray(want), "trajectory", what=f"epoch {epoch} params")
        assert mine.stats["max_fitness"] == theirs.stats["max_fitness"]
    assert len({tuple(row) for row in mine.tokens.tolist()}) > 1


def test_cached_noise_is_the_noisers_own():
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, torch.float32)
    frozen, nparams = EggRoll.init_noiser(init.params, 0.1, 0.1, rank=2)
    from eggroll_torch.models.common import simple_es_tree_key

    keys = simple_es_tree_key(init.params, es_random.key(1), init.scan_map)
    iterinfo = (torch.zeros(4, dtype=torch.int32), torch.arange(4))
    tokens = torch.tensor([[3], [4], [5], [6]])
    state = trwkv7.ScanRWKV.default_state(init.params, None).expand(4, -1, -1, -1)
    cached = caching_noiser(EggRoll)
    plain = trwkv7.ScanRWKV.forward(EggRoll, frozen, nparams, None, init.params, keys, iterinfo, tokens, state)
    with cached.noise_cache():
        for _ in range(2):
            again = trwkv7.ScanRWKV.forward(cached, frozen, nparams, None, init.params, keys, iterinfo, tokens, state)
            torch.testing.assert_close(again[0], plain[0], rtol=0, atol=0)
        with pytest.raises(RuntimeError, match="does not nest"):
            with cached.noise_cache():
                pass


@pytest.mark.parametrize("field,value,match", [
    ("parallel_generations", 7, "multiple of generations_per_prompt"),
    ("temperature", -1.0, "temperature must be >= 0"),
    ("noiser", "nope", "noiser must be one of"),
    ("generation_length", 0, "generation_length must be a positive int"),
])
def test_config_errors_name_the_field(field, value, match):
    for module in (tl, jl):
        with pytest.raises(ValueError, match=match):
            module.EvolutionConfig(**(BASE | {field: value}))


def test_subset_of_members_needs_exchange():
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, torch.float32)
    evo = tl.Evolution(trwkv7.ScanRWKV, init, torch_tasks["fastzero"](None, None, 10), tl.EvolutionConfig(**BASE))
    with pytest.raises(ValueError, match="exchange="):
        evo.single_epoch(evo.noiser_params, evo.params, 0, members=range(0, 4))


def test_members_split_and_chunked_give_the_same_epoch():
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, torch.float32)
    config = tl.EvolutionConfig(**(BASE | {"temperature": 1.0}))
    task = torch_tasks["uniquetok"](None, None, 10)
    whole = tl.Evolution(trwkv7.ScanRWKV, init, task, config, members_per_call=4)
    full = whole.single_epoch(whole.noiser_params, whole.params, 0)
    halves = [whole.single_epoch(whole.noiser_params, whole.params, 0, members=r, exchange=lambda s: full.fitness)
              for r in (range(0, 4), range(4, 8))]
    np.testing.assert_array_equal(torch.cat([h.tokens for h in halves]).numpy(), full.tokens.numpy())
    for got, want in zip(tree.leaves(halves[0].params), tree.leaves(full.params)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
