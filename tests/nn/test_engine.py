"""engine.*: the trainer's pair engine draws the functional layer's noise bit for bit, any slice
of pairs alone, and runs a generation eagerly or as a CUDA graph with the same outcome.

Expected values come from the functional layer (``get_lora_update_params``,
``get_nonlora_update_params``, ``do_updates``), never from the engine under test.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer, flatten_paths, nest
from eggroll_torch.nn.engine import factor_rows
from eggroll_torch.noiser import eggroll, lora_sigma

from nn_support import CUDA, explicit_member, small_net

N = 8


def _trainer(net, **kwargs):
    options = dict(population_size=N, rank=3, noise_reuse=1, seed=5) | kwargs
    return EggrollTrainer(net, 0.2, 0.05, **options)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
def test_engine_noise_matches_functional(dtype):
    trainer = _trainer(small_net(dtype))
    trainer.epoch = 3
    params = dict(trainer.module.named_parameters())
    draws = trainer._engine.draw(trainer.epoch, range(N // 2), sigma=trainer.noiser_params["sigma"])
    matrices, vectors = trainer._engine.forward_noise(draws, params, trainer.noiser_params["sigma"],
                                                      trainer._linear_biases)
    iterinfo = trainer.iterinfo()
    signs = torch.tensor([1.0, -1.0] * (N // 2), dtype=dtype)
    for path, param in params.items():
        key, es_class = trainer.keys[path], trainer.es_classes[path]
        if es_class == MM_PARAM:
            sigma = lora_sigma(trainer.noiser_params["sigma"], 3, dtype, param.device)
            A, B = eggroll.get_lora_update_params(trainer.frozen_noiser_params, sigma, iterinfo, param.detach(), key)
            z_b, scaled_a = matrices[path].B, matrices[path].rows[:, :3].transpose(1, 2)
            assert_parity(z_b.repeat_interleave(2, 0), B, "exact", what=f"B of {path}")
            assert_parity(scaled_a.repeat_interleave(2, 0) * signs[:, None, None], A, "exact", what=f"A of {path}")
        elif es_class == PARAM:
            noise = eggroll.get_nonlora_update_params(
                trainer.frozen_noiser_params, trainer.noiser_params["sigma"], iterinfo, param.detach(), key)
            got = vectors[path][1].repeat_interleave(2, 0) * signs.view(-1, *([1] * param.ndim))
            assert_parity(got, noise, "exact", what=f"noise of {path}")
    # The bias rows folded behind a matrix's factor rows are its two members' values.
    bias_rows = matrices["0.weight"].rows[:, 3:5]
    bias, bias_noise = vectors["0.bias"]
    assert_parity(bias_rows[:, 0], bias + bias_noise, "exact", what="even member's bias row")
    assert_parity(bias_rows[:, 1], bias - bias_noise, "exact", what="odd member's bias row")
    assert not matrices["0.weight"].rows[:, 5:].any(), "padding rows must be zero"


def test_engine_slice_of_pairs_equals_slice_of_full_draw():
    trainer = _trainer(small_net())
    only = trainer._engine.draw(1, range(N // 2), 0.2, ["3.weight"])
    full = trainer._engine.draw(1, range(N // 2), 0.2)
    part = trainer._engine.draw(1, range(1, 3), 0.2)
    for path, z in part.matrices.items():
        assert_parity(z, full.matrices[path][:, 1:3], "exact", what=f"B of pairs 1..2 of {path}")
        assert_parity(part.rows[path][:3], full.rows[path][:3, 1:3], "exact", what=f"A of pairs 1..2 of {path}")
    for path, z in part.vectors.items():
        assert_parity(z, full.vectors[path][1:3], "exact", what=f"pairs 1..2 of {path}")
    assert set(only.matrices) == {"3.weight"} and not only.vectors
    assert_parity(only.matrices["3.weight"], full.matrices["3.weight"], "exact", what="3.weight drawn alone")
    assert_parity(only.rows["3.weight"][:3], full.rows["3.weight"][:3], "exact", what="A of 3.weight drawn alone")


def test_engine_draw_is_reused_within_a_true_epoch_only():
    trainer = _trainer(small_net(), noise_reuse=2)
    first = trainer._engine.draw(2, range(N // 2), 0.2)
    assert trainer._engine.draw(3, range(N // 2), 0.2) is first
    later = trainer._engine.draw(4, range(N // 2), 0.2)
    assert not torch.equal(later.matrices["0.weight"], first.matrices["0.weight"])


def test_engine_odd_population_keeps_the_functional_update():
    # Five members leave the last pair incomplete: the trainer falls back to do_updates, bit for bit.
    trainer = _trainer(small_net(), population_size=5)
    assert trainer._pairs(range(5)) is None
    params = {path: p.detach().clone() for path, p in trainer.module.named_parameters()}
    raw = torch.linspace(-1.0, 2.0, 5)
    frozen, noiser_params = trainer.frozen_noiser_params, trainer.noiser_params
    fitnesses = eggroll.EggRoll.convert_fitnesses(frozen, noiser_params, raw)
    _, expected = eggroll.EggRoll.do_updates(frozen, noiser_params, nest(params), nest(trainer.keys), fitnesses,
                                             trainer.iterinfo(), nest(trainer.es_classes))
    trainer.update(raw)
    for path, value in flatten_paths(expected).items():
        assert_parity(dict(trainer.module.named_parameters())[path], value, "exact", what=path)


def test_engine_graphed_step_off_cuda_is_step():
    fitness_x = torch.randn(N, 4, 5)

    def fitness(pop):
        return pop(fitness_x).sum((1, 2))

    eager, graphed = _trainer(small_net()), _trainer(small_net())
    step = graphed.graphed_step(fitness)
    assert not step.graphed
    for _ in range(2):
        eager.step(fitness)
        step()
    for (path, got), want in zip(graphed.module.named_parameters(), eager.module.parameters()):
        assert_parity(got, want, "exact", what=path)
    assert graphed.epoch == eager.epoch == 2


def test_engine_graphed_step_rejects_bad_arguments():
    trainer = _trainer(small_net())
    with pytest.raises(ValueError, match="warmup must be an int >= 1"):
        trainer.graphed_step(lambda pop: None, warmup=0)
    with pytest.raises(TypeError, match="fitness_fn must be callable"):
        trainer.graphed_step("not a function")


@pytest.mark.parametrize("device", [CUDA])
def test_engine_graphed_step_matches_eager_step_on_cuda(device):
    x = torch.randn(N, 4, 5, device=device)

    def fitness(pop):
        return pop(x).float().sum((1, 2))

    eager, graphed = _trainer(small_net(device=device)), _trainer(small_net(device=device))
    step = graphed.graphed_step(fitness)
    assert step.graphed and graphed.epoch == 0
    for epoch in range(3):
        want, got = eager.step(fitness), step()
        assert got["epoch"] == want["epoch"] == epoch
        for (path, p), q in zip(graphed.module.named_parameters(), eager.module.parameters()):
            assert_parity(p, q, "reduction", what=f"{path} after epoch {epoch}")
    before = {path: p.detach().clone() for path, p in graphed.module.named_parameters()}
    x[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite score in epoch 3"):
        step()
    assert graphed.epoch == 3
    for path, p in graphed.module.named_parameters():
        assert torch.equal(p, before[path]), f"{path} changed although the fitness was rejected"
    graphed.update(torch.zeros(N, device=device))
    with pytest.raises(RuntimeError, match="record a new one"):
        step()


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_draws_keep_bias_rows_only_for_groups_with_a_folded_bias(device):
    torch.manual_seed(0)
    # 0.weight is alone in its (4 -> 6) group, without a bias; 2.weight (biased) and 4.weight
    # (bias-free) share the (6 -> 6) group, which keeps the bias rows.
    net = nn.Sequential(nn.Linear(4, 6, bias=False), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(),
                        nn.Linear(6, 6, bias=False)).to(device)
    trainer = _trainer(net)
    draws = trainer._engine.draw(0, range(N // 2), 0.2)
    assert draws.rows["0.weight"].shape[0] == factor_rows(3, device, 0)
    assert draws.rows["2.weight"].shape[0] == draws.rows["4.weight"].shape[0] == factor_rows(3, device)
    x = torch.randn(N, 2, 4, device=device)
    out = trainer.population()(x)
    for i in range(N):
        assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"member {i} output")


def test_factor_rows_pad_to_eight_on_cuda_only():
    assert (factor_rows(3, "cpu", 0), factor_rows(3, "cpu")) == (3, 5)
    assert (factor_rows(16, "cuda", 0), factor_rows(16, "cuda"), factor_rows(4, "cuda", 0)) == (16, 24, 8)
