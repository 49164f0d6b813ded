"""jax_reference.llm against upstream's LLM evolution loop (``llm_experiments/``).

Upstream's side is its own ``utils.build_generate_thread``, jitted under ``shard_map`` over a
one-device ``'data'`` mesh and vmapped over members exactly as ``general_do_evolution.py`` builds
``generate_batch``, with upstream's RWKV-7, noiser and bandit task; the epoch around it (prompts
repeated per member, fitness, ``convert_fitnesses`` + ``do_updates`` with ``(full(N, epoch),
arange(N))``) follows the script's steps. Ours is :class:`jax_reference.llm.Evolution`. For a small
random RWKV-7 and toy tasks, every member's generated tokens, the fitnesses and the parameters
after each of 3 epochs must be bit-identical.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from _upstream_bandits import import_upstream_bandits, import_upstream_llm_utils
from _upstream_llm import rwkv7_state_dict
from conformance.tolerances import assert_tree_parity
from jax_reference.environments.llm_bandits import all_tasks
from jax_reference.llm import Evolution, EvolutionConfig, master_keys
from jax_reference.models.llm import rwkv7

pytestmark = [pytest.mark.upstream]

EPOCHS = 3
CASES = {
    # name: (task, variant, EvolutionConfig overrides)
    "fastzero-sampled": ("fastzero", "ScanRWKV", {"temperature": 1.0}),
    "uniquetok-greedy-rank2": ("uniquetok", "BaseRWKV", {"temperature": 0.0, "rank": 2, "sigma": 0.2}),
    "reptok-temperature-reuse0": ("reptok", "ScanRWKV",
                                  {"temperature": 0.7, "noise_reuse": 0, "freeze_nonlora": False}),
}
BASE = {"generation_length": 12, "parallel_generations": 8, "generations_per_prompt": 2, "sigma": 0.05,
        "lr_scale": 0.1, "validate_every": 0}


def _checkpoint():
    return rwkv7_state_dict(3, 2, 2, 4, 24, lora_dims=(4, 4, 2, 4))


def upstream_run(hs, src, task_name, variant, config):
    """The script's epochs on upstream's modules; per epoch ``(tokens, fitness, params)``."""
    utils = import_upstream_llm_utils(src)
    bandits, _ = import_upstream_bandits()
    RWKV = getattr(hs.models.llm.rwkv7, variant)
    config_, params, scan_map, es_map = RWKV.load_from_torch(_checkpoint(), None, jnp.float32)
    NOISER = hs.noiser.eggroll.EggRoll
    es_key, gen_key, _ = master_keys(config.seed)
    frozen, noiser_params = NOISER.init_noiser(params, config.sigma, config.lr_scale,
                                               group_size=config.generations_per_prompt,
                                               freeze_nonlora=config.freeze_nonlora,
                                               noise_reuse=config.noise_reuse, rank=config.rank)
    keys = hs.models.common.simple_es_tree_key(params, es_key, scan_map)
    mesh = jax.make_mesh((1,), ("data",))
    thread = utils.build_generate_thread(RWKV, NOISER, frozen, config_, keys, gen_key, config.temperature)
    generate_batch = jax.jit(jax.shard_map(jax.vmap(thread, in_axes=(None, None, 0, 0, None)), mesh=mesh,
                                           in_specs=(P(), P(), P("data"), P("data"), P()), out_specs=P("data")))
    task = bandits.all_tasks[task_name](None, None, config.generation_length)
    n, group = config.parallel_generations, config.generations_per_prompt
    threads = jnp.arange(n)
    by_member = NamedSharding(mesh, P("data"))

    @jax.jit
    def do_update(noiser_params, params, raw_scores, epoch):
        iterinfos = (jnp.full(raw_scores.size, epoch, dtype=jnp.int32), threads)
        fitnesses = NOISER.convert_fitnesses(frozen, noiser_params, raw_scores)
        return NOISER.do_updates(frozen, noiser_params, params, keys, fitnesses, iterinfos, es_map)

    out = []
    for epoch in range(EPOCHS):
        unique = jnp.arange(n // group) + epoch * (n // group)
        prompts = jnp.repeat(task.get_input(unique), group, axis=0)
        # As the script, members are laid out along the mesh's 'data' axis.
        tokens = generate_batch(noiser_params, params, jax.device_put(prompts, by_member),
                                jax.device_put(threads, by_member), epoch)
        # The script scores each shard's tokens on the host, without their sharding.
        fitness = task.get_batch_fitness(jnp.repeat(unique, group), jnp.asarray(np.asarray(tokens)))
        noiser_params, params = do_update(noiser_params, params, fitness, epoch)
        out.append({"tokens": tokens, "fitness": fitness, "params": params})
    return out


def ours_run(task_name, variant, config):
    RWKV = getattr(rwkv7, variant)
    init = RWKV.load_from_torch(_checkpoint(), None, jnp.float32)
    evo = Evolution(RWKV, init, all_tasks[task_name](None, None, config.generation_length), config)
    noiser_params, params = evo.noiser_params, evo.params
    out = []
    for epoch in range(EPOCHS):
        result = evo.single_epoch(noiser_params, params, epoch)
        noiser_params, params = result.noiser_params, result.params
        out.append({"tokens": result.tokens, "fitness": result.fitness, "params": params})
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_llm_loop_matches_upstream(hs, upstream_src, ledger, case):
    task_name, variant, overrides = CASES[case]
    config = EvolutionConfig(**(BASE | overrides))
    theirs = upstream_run(hs, upstream_src, task_name, variant, config)
    ours = ours_run(task_name, variant, config)
    for epoch, (mine, other) in enumerate(zip(ours, theirs)):
        ledger.record(assert_tree_parity(mine, other, "bits", what=f"{case} epoch {epoch}"))
    ledger.cases += 1
    # The runs must be informative: members sample different tokens and the update moves params.
    assert len({tuple(row) for row in np.asarray(ours[-1]["tokens"]).tolist()}) > 1
    first = jax.tree.leaves(ours[0]["params"])
    assert any(not np.array_equal(a, b) for a, b in zip(first, jax.tree.leaves(ours[-1]["params"])))
