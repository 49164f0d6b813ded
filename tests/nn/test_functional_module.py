"""``FunctionalModule``: functional models (MLP, RWKV-7) trained by ``EggrollTrainer`` unchanged.

The trainer's population and update are compared with the functional layer run by hand on the
same params, keys, ``iterinfo`` and fitnesses: the population output and the new parameters are
bit-identical, layer-stacked RWKV-7 leaves (one key per layer) included.
"""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import assert_parity
from eggroll_torch import noiser as noisers
from eggroll_torch import random as es_random
from eggroll_torch.models import common
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict
from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer, FunctionalModule, FunctionalPopulation
from eggroll_torch.nn.param_tree import flatten_paths

N_LAYER, N_HEAD, HEAD_SIZE, VOCAB, T = 2, 2, 4, 11, 5


def rwkv_module(variant="ScanRWKV"):
    sd = rwkv7_state_dict(0, N_LAYER, N_HEAD, HEAD_SIZE, VOCAB)
    return FunctionalModule.from_torch(getattr(rwkv7, variant), sd, dtype=torch.float32)


def mlp_module():
    return FunctionalModule(common.MLP, common.MLP.rand_init(es_random.key(3), 3, 2, [8, 8], True, "relu",
                                                             torch.float32))


def by_hand(module, trainer_kwargs, members, epoch_fitnesses, inputs):
    """The functional layer run by hand for several epochs: per epoch the population output, and
    the final params."""
    init = module.common_init()
    noiser = noisers.all_noisers[trainer_kwargs.get("noiser", "eggroll")]
    frozen, state = noiser.init_noiser(init.params, trainer_kwargs["sigma"], trainer_kwargs["lr"],
                                       solver=trainer_kwargs.get("solver", "sgd"), rank=trainer_kwargs["rank"],
                                       noise_reuse=trainer_kwargs.get("noise_reuse", 0))
    keys = common.simple_es_tree_key(init.params, es_random.key(trainer_kwargs["seed"]), init.scan_map)
    params, outputs = init.params, []
    for epoch, fitness in enumerate(epoch_fitnesses):
        iterinfo = (torch.full((members,), epoch, dtype=torch.int32), torch.arange(members, dtype=torch.int32))
        outputs.append(module.model.forward(noiser, frozen, state, init.frozen_params, params, keys, iterinfo,
                                            *inputs))
        shaped = noiser.convert_fitnesses(frozen, state, fitness)
        state, params = noiser.do_updates(frozen, state, params, keys, shaped, iterinfo, init.es_map)
    return outputs, params


def by_trainer(module, trainer_kwargs, members, epoch_fitnesses, inputs):
    trainer = EggrollTrainer(module, population_size=members, **trainer_kwargs)
    outputs = []
    for fitness in epoch_fitnesses:
        pop = trainer.population()
        assert isinstance(pop, FunctionalPopulation) and pop.size == members
        outputs.append(pop(*inputs))
        trainer.update(fitness)
    return trainer, outputs


def assert_bits(got, expected, what):
    def leaves(out):
        return flatten_paths({"v": out} if isinstance(out, torch.Tensor) else {str(i): v for i, v in enumerate(out)})

    for path, value in leaves(got).items():
        other = leaves(expected)[path]
        assert torch.equal(value, other), f"{what} {path}: max |diff| {(value - other).abs().max()}"


@pytest.mark.parametrize("noiser", ["eggroll", "open_es"])
def test_rwkv7_trainer_equals_functional(noiser):
    """Three epochs of adam on RWKV-7 (ScanRWKV), noise_reuse 1: population logits and state, and
    the params after the updates, equal the functional layer's bit for bit."""
    members = 4
    kwargs = {"sigma": 0.05, "lr": 0.01, "rank": 2, "seed": 7, "noise_reuse": 1, "solver": "adam", "noiser": noiser}
    module = rwkv_module()
    tokens = torch.randint(0, VOCAB, (members, T), generator=torch.Generator().manual_seed(0))
    state = rwkv7.ScanRWKV.default_state(module.param_tree(), None).expand(members, -1, -1, -1)
    fitnesses = [torch.randn(members, generator=torch.Generator().manual_seed(e)) for e in range(3)]
    outputs, params = by_hand(rwkv_module(), kwargs, members, fitnesses, (tokens, state))
    trainer, got = by_trainer(module, kwargs, members, fitnesses, (tokens, state))
    for epoch, (g, e) in enumerate(zip(got, outputs)):
        assert_bits(g, e, f"epoch {epoch} population output")
    for path, value in flatten_paths(params).items():
        assert torch.equal(module.get_parameter(path), value), f"params {path} after 3 updates"
    assert trainer.keys["blocks.att.key.weight"].shape == (N_LAYER, 2)
    assert trainer.es_classes["blocks.att.key.weight"] == MM_PARAM and trainer.es_classes["emb.weight"] == 3


def test_mlp_trainer_equals_functional_and_step():
    """Upstream's MLP through the trainer, EGGROLL with an even population (no pair engine for a
    functional model): the same bits as the functional layer; ``step`` is population + update."""
    members, kwargs = 6, {"sigma": 0.1, "lr": 0.05, "rank": 2, "seed": 1}
    x = torch.randn(members, 3, generator=torch.Generator().manual_seed(4))
    fitnesses = [torch.randn(members, generator=torch.Generator().manual_seed(10 + e)) for e in range(2)]
    outputs, params = by_hand(mlp_module(), kwargs, members, fitnesses, (x,))
    module = mlp_module()
    trainer, got = by_trainer(module, kwargs, members, fitnesses[:1], (x,))
    assert_bits(got[0], outputs[0], "MLP population")
    metrics = trainer.step(lambda pop: fitnesses[1] + 0 * pop(x)[:, 0])
    assert metrics["epoch"] == 1
    for path, value in flatten_paths(params).items():
        assert torch.equal(module.get_parameter(path), value), path


def test_unperturbed_forward_and_shared_inputs():
    """``module(x)`` is the model without noise; ``in_dims=None`` gives every member the same input."""
    module = mlp_module()
    x = torch.randn(3)
    init = module.common_init()
    keys = common.simple_es_tree_key(init.params, es_random.key(0), init.scan_map)
    expected = common.MLP.forward(noisers.all_noisers["noop"], None, None, init.frozen_params, init.params, keys,
                                  None, x)
    assert torch.equal(module(x), expected)
    trainer = EggrollTrainer(module, sigma=0.1, lr=0.1, population_size=4, rank=1, noiser="noop")
    out = trainer.population()(x, in_dims=None)
    assert out.shape == (4, 2)
    # A (4, 3) @ W product may round differently from a (3,) @ W one: summation order only.
    for member in out:
        assert_parity(member, expected, "reduction", what="shared-input member")


def test_state_dict_resume_with_stacked_keys():
    """A resumed trainer continues bit-identically; the saved keys keep their per-layer shape."""
    members = 4
    kwargs = {"sigma": 0.05, "lr": 0.01, "rank": 2, "seed": 3, "population_size": members, "solver": "adam"}
    tokens = torch.randint(0, VOCAB, (members, T), generator=torch.Generator().manual_seed(1))

    def fitness(pop):
        state = rwkv7.ScanRWKV.default_state(pop_params(), None).expand(members, -1, -1, -1)
        return pop(tokens, state)[0].mean(dim=(1, 2))

    first = EggrollTrainer(rwkv_module(), **kwargs)
    pop_params = first.module.param_tree
    first.step(fitness)
    saved = first.state_dict()
    assert saved["keys"]["blocks.ffn.key.weight"].shape == (N_LAYER, 2)
    first.step(fitness)
    second = EggrollTrainer(rwkv_module(), **kwargs)
    second.load_state_dict(saved)
    pop_params = second.module.param_tree
    second.step(fitness)
    for path, value in first.module.named_parameters():
        assert torch.equal(value, second.module.get_parameter(path)), path


def test_es_classes_override_on_stacked_leaves():
    """Overrides are checked per stacked layer: a (L, out, in) leaf may be MM_PARAM, a (L, C) one may not."""
    trainer = EggrollTrainer(rwkv_module(), sigma=0.1, lr=0.1, population_size=2,
                             es_classes={"blocks.att.key.weight": PARAM})
    assert trainer.es_classes["blocks.att.key.weight"] == PARAM
    with pytest.raises(ValueError, match=r"blocks\.att\.w0.*MM_PARAM needs a 2-D"):
        EggrollTrainer(rwkv_module(), sigma=0.1, lr=0.1, population_size=2, es_classes={"blocks.att.w0": MM_PARAM})


def test_bad_inputs():
    init = common.MLP.rand_init(es_random.key(0), 2, 1, [4], True, "relu", torch.float32)
    with pytest.raises(TypeError, match="model must be a functional model class"):
        FunctionalModule(torch.nn.Linear, init)
    with pytest.raises(TypeError, match="init must be the CommonInit"):
        FunctionalModule(common.MLP, init.params)
    with pytest.raises(ValueError, match="es_map must have one entry per parameter; missing"):
        FunctionalModule(common.MLP, init._replace(es_map={"0": {"weight": MM_PARAM}}))
    with pytest.raises(ValueError, match=r"es_map entry '0.weight' = 7 is not an ES class"):
        FunctionalModule(common.MLP, init._replace(es_map={**init.es_map, "0": {"weight": 7, "bias": PARAM}}))
    clash = {"forward": init.params["0"]}
    with pytest.raises(ValueError, match="params entry 'forward' cannot be a module attribute name"):
        FunctionalModule(common.MLP, init._replace(params=clash, scan_map={"forward": init.scan_map["0"]},
                                                   es_map={"forward": init.es_map["0"]}))
    trainer = EggrollTrainer(FunctionalModule(common.MLP, init), sigma=0.1, lr=0.1, population_size=4)
    pop = trainer.population()
    with pytest.raises(ValueError, match="argument 0 has shape \\(3, 2\\).*4 members"):
        pop(torch.randn(3, 2))
    with pytest.raises(ValueError, match="in_dims\\[0\\] = 1"):
        pop(torch.randn(2, 4), in_dims=1)
    with pytest.raises(ValueError, match="in_dims has 2 entries for 1"):
        pop(torch.randn(4, 2), in_dims=(0, None))
    trainer.update(torch.randn(4))
    with pytest.raises(RuntimeError, match="built before the trainer's parameters changed"):
        pop(torch.randn(4, 2))
