"""eggroll_torch.llm against jax_reference.llm: sampling, generation, fitness and updates.

Both sides load the same small random RWKV-7 and run the same EvolutionConfig; the torch loop
runs the population at once (with each member's noise drawn once per generation), the reference
vmaps members. Tokens and fitnesses must be identical, parameters within the trajectory
tolerance. On CUDA, the graphed token loop must give the eager loop's tokens.
"""
from __future__ import annotations

import os
import subprocess
import sys

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
from eggroll_torch.llm.member_noise import drawn_noiser, member_noise
from eggroll_torch.llm.utils import _COMPILE_MIN_TORCH, _torch_release, gumbel_noise
from eggroll_torch.random.gumbel import gumbel_of_mantissas
from eggroll_torch.models.common import simple_es_tree_key
from eggroll_torch.models.llm import rwkv7 as trwkv7
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
from eggroll_torch.noiser import all_noisers
from eggroll_torch.noiser.eggroll import EggRoll
from eggroll_torch.random.triton_support import triton_installed
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
    # About 45 s of XLA compiling on a 2-core machine; llm.es_epoch checks this setting against
    # the reference's vectors in every CI run.
    pytest.param("uniquetok", {"temperature": 0.0, "rank": 2, "freeze_nonlora": False}, marks=pytest.mark.slow),
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


@pytest.mark.parametrize("name", ["eggroll", "eggrollbs", "alteggroll", "open_es", "sparse", "noop"])
def test_drawn_noise_is_the_noisers_own(name):
    NOISER = all_noisers[name]
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, torch.float32)
    frozen, nparams = NOISER.init_noiser(init.params, 0.1, 0.1, rank=2, freeze_nonlora=False, noise_reuse=1)
    keys = simple_es_tree_key(init.params, es_random.key(1), init.scan_map)
    iterinfo = (torch.full((4,), 3, dtype=torch.int32), torch.arange(4))
    tokens = torch.tensor([[3], [4], [5], [6]])
    state = trwkv7.ScanRWKV.default_state(init.params, None).expand(4, -1, -1, -1)
    plain = trwkv7.ScanRWKV.forward(NOISER, frozen, nparams, None, init.params, keys, iterinfo, tokens, state)
    drawn = drawn_noiser(NOISER)
    noise = member_noise(drawn, init.params, keys)
    for _ in range(2):
        again = trwkv7.ScanRWKV.forward(drawn, frozen, nparams, None, init.params, noise, iterinfo, tokens, state)
        torch.testing.assert_close(again[0], plain[0], rtol=0, atol=0)
        torch.testing.assert_close(again[1], plain[1], rtol=0, atol=0)
    with_keys = trwkv7.ScanRWKV.forward(drawn, frozen, nparams, None, init.params, keys, iterinfo, tokens, state)
    torch.testing.assert_close(with_keys[0], plain[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gumbel_by_bits_is_gumbels_own(dtype):
    keys = es_random.split(es_random.key(7), 40)
    words = es_random.bits(keys, (300,), torch.uint32).view(torch.int32)
    shift, mask = {torch.float32: (9, (1 << 23) - 1), torch.bfloat16: (1, 127)}[dtype]
    expected = es_random.gumbel(keys, (300,), dtype)
    torch.testing.assert_close(gumbel_of_mantissas((words >> shift) & mask, dtype), expected, rtol=0, atol=0)
    torch.testing.assert_close(gumbel_noise(keys, 300, dtype), expected, rtol=0, atol=0)


_INTERPRETED_LOOKUP = """
import torch
from eggroll_torch import random as es_random
from eggroll_torch.llm.gumbel_triton import lookup
from eggroll_torch.llm.utils import _gumbel_table, gumbel_noise
keys = es_random.split(es_random.key(11), 6)
expected = es_random.gumbel(keys, (2500,), torch.bfloat16)
assert torch.equal(lookup(keys, 2500, _gumbel_table(torch.bfloat16, keys.device), 1, 127), expected)
assert torch.equal(gumbel_noise(keys, 2500, torch.bfloat16), expected)
"""


@pytest.mark.skipif(not triton_installed(), reason="triton is not installed (it is optional); "
                                                   "`pip install triton` to check the kernel on the CPU")
def test_gumbel_lookup_kernel_interpreted():
    """The Triton lookup of gumbel_noise, run by Triton's interpreter in a fresh process."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    done = subprocess.run([sys.executable, "-c", _INTERPRETED_LOOKUP], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gumbel_noise_on_cuda_is_gumbels_own(dtype):
    keys = es_random.split(es_random.key(3), 64)
    expected = es_random.gumbel(keys, (5000,), dtype)
    torch.testing.assert_close(gumbel_noise(keys.cuda(), 5000, dtype).cpu(), expected, rtol=0, atol=0)


@pytest.mark.cuda
@pytest.mark.parametrize("temperature,dtype", [(1.0, torch.bfloat16), (0.7, torch.float32), (0.0, torch.bfloat16)])
def test_graphed_generation_matches_eager_on_cuda(temperature, dtype, monkeypatch):
    """Every call of a graphed generate function gives the eager loop's tokens: the first (which
    records), later ones with other params, prompts, thread ids and epoch (which replay the
    recording), one with longer prompts (recorded beside it), then the first length again
    (replayed), and one with another sigma (which records again)."""
    recordings = []
    record = tl.utils._Recorded.__init__
    monkeypatch.setattr(tl.utils._Recorded, "__init__", lambda self, *a: recordings.append(1) or record(self, *a))
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, dtype)
    params = tree.map(lambda x: x.cuda(), init.params)
    frozen, nparams = EggRoll.init_noiser(params, 0.05, 0.1, rank=2, freeze_nonlora=False, noise_reuse=1)
    es_key, gen_key, _ = tl.master_keys(0, "cuda")
    keys = simple_es_tree_key(params, es_key, init.scan_map)
    build = [tl.build_generate_batch(trwkv7.ScanRWKV, EggRoll, frozen, None, keys, gen_key, temperature,
                                     cuda_graph=graph) for graph in (True, False)]
    gen = torch.Generator().manual_seed(1)
    calls = []
    for epoch, steps, scale, sigma in ((2, 11, 1.0, 0.05), (3, 11, 1.1, 0.05), (7, 14, 0.9, 0.05), (5, 11, 0.9, 0.05),
                                       (4, 11, 1.0, 0.02)):
        prompts = torch.zeros((16, steps), dtype=torch.int32)
        prompts[:, :3] = torch.randint(1, 20, (16, 3), generator=gen)
        threads = torch.randperm(40, generator=gen)[:16]
        moved = tree.map(lambda x: (x.float() * scale).to(x.dtype), params)
        calls.append(({**nparams, "sigma": sigma}, moved, prompts, threads, epoch))
    for i, args in enumerate(calls):
        graphed, eager = (generate(*args).cpu().numpy() for generate in build)
        np.testing.assert_array_equal(graphed, eager, err_msg=f"call {i}")
        assert len({tuple(row) for row in graphed.tolist()}) > 1
    assert len(recordings) == 3, "the first call records, the second replays, another prompt length records, " \
                                 "the first length replays again, another sigma records again"


def test_recording_signature_sees_what_the_graph_holds_as_constants():
    """The params are copied again (and graphs recorded again) for other shapes, dtypes, tree
    structures or non-tensor values the forward reads, not for new values of the same tensors or
    another opt_state."""
    from eggroll_torch.llm.utils import _call_leaves, _signature

    params = {"w": torch.zeros(3, 2), "b": torch.zeros(2)}
    noiser = {"sigma": 0.1, "opt_state": (torch.zeros(3),)}
    base = _signature(noiser, params)
    other_values = {"w": torch.ones(3, 2), "b": torch.ones(2)}
    assert _signature({"sigma": 0.1, "opt_state": (torch.ones(7),)}, other_values) == base
    for other in ((noiser | {"sigma": 0.2}, params), (noiser, {"w": torch.zeros(3, 2), "c": torch.zeros(2)}),
                  (noiser, {"w": torch.zeros(3, 2, dtype=torch.float64), "b": torch.zeros(2)})):
        assert _signature(*other) != base
    assert [x.shape for x in _call_leaves(noiser, params)] == [(2,), (3, 2)]


def test_recordings_share_one_params_copy_and_keep_two_prompt_shapes(monkeypatch):
    """One recording per prompt shape, the two most recently used kept, all reading one copy of
    the params; another sigma copies them again and drops the recordings."""
    from eggroll_torch.llm import utils

    made = []

    class Recorded:
        def __init__(self, model, noiser_params, params, prompts, *rest):
            made.append((prompts.shape[1], noiser_params["sigma"], params))

        def __call__(self, *args):
            return None

    monkeypatch.setattr(utils, "_Recorded", Recorded)
    recordings = utils._Recordings(model=None)
    params = {"w": torch.zeros(3, 2)}
    for steps, sigma in ((5, 0.1), (5, 0.1), (6, 0.1), (5, 0.1), (7, 0.1), (6, 0.1), (6, 0.2), (6, 0.2)):
        recordings({"sigma": sigma}, params, torch.zeros(4, steps), None, None, None, None, steps)
    assert [(steps, sigma) for steps, sigma, _ in made] == [(5, 0.1), (6, 0.1), (7, 0.1), (6, 0.1), (6, 0.2)]
    copies = [copy for _, _, copy in made]
    assert all(copy is copies[0] for copy in copies[:4]) and copies[4] is not copies[0]
    assert copies[0] is not params and torch.equal(copies[0]["w"], params["w"])


def test_recorded_loop_needs_a_contiguous_cuda_buffer():
    with pytest.raises(ValueError, match="buffer must be a contiguous CUDA tensor"):
        tl.token_loop.RecordedLoop(lambda state, first: state, torch.zeros(2, 3))


def _compiled_and_eager(device, dtype, temperature):
    """Tokens of one generation with the forward compiled and eagerly, and the graphs dynamo made."""
    init = trwkv7.ScanRWKV.load_from_torch(_state_dict(), None, dtype)
    params = tree.map(lambda x: x.to(device), init.params)
    frozen, nparams = EggRoll.init_noiser(params, 0.05, 0.1, rank=2, freeze_nonlora=False, noise_reuse=1)
    es_key, gen_key, _ = tl.master_keys(0, device)
    keys = simple_es_tree_key(params, es_key, init.scan_map)
    prompts = torch.zeros((16, 11), dtype=torch.int32)
    prompts[:, :3] = torch.arange(1, 49).reshape(16, 3) % 19 + 1
    threads = torch.arange(16)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    runs = [tl.build_generate_batch(trwkv7.ScanRWKV, EggRoll, frozen, None, keys, gen_key, temperature,
                                    compile=compiled)(nparams, params, prompts, threads, 2).cpu().numpy()
            for compiled in (True, False, True)]
    return runs, torch._dynamo.utils.counters["stats"]["unique_graphs"]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA")])])
def test_compiled_generation_matches_eager(device):
    """float32, where fused kernels' other summation order stays far below a token's margin."""
    if _torch_release(torch.__version__) < _COMPILE_MIN_TORCH:
        pytest.skip(f"compile=True needs torch >= {_COMPILE_MIN_TORCH}; this is torch {torch.__version__}")
    (compiled, eager, rebuilt), graphs = _compiled_and_eager(device, torch.float32, 1.0)
    # One graph: compile=True reached torch.compile, and a second generate function of the same
    # model and noiser reused what the first compiled.
    assert graphs == 1, f"dynamo made {graphs} graphs for two compiled generate functions of one model and noiser"
    np.testing.assert_array_equal(compiled, eager)
    np.testing.assert_array_equal(rebuilt, eager)
    assert len({tuple(row) for row in compiled.tolist()}) > 1


def test_compile_must_be_a_bool():
    with pytest.raises(TypeError, match="compile must be True or False"):
        tl.build_generate_batch(trwkv7.ScanRWKV, EggRoll, {}, None, {}, tl.master_keys(0)[1], compile="yes")


def test_compile_on_an_older_torch_says_which_it_needs(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.10.0+cu128")
    with pytest.raises(ValueError, match=r"compile=True needs torch >= 2.11 .* this is torch 2.10.0\+cu128"):
        tl.build_generate_batch(trwkv7.ScanRWKV, EggRoll, {}, None, {}, tl.master_keys(0)[1], compile=True)
    tl.build_generate_batch(trwkv7.ScanRWKV, EggRoll, {}, None, {}, tl.master_keys(0)[1], compile=False)


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
