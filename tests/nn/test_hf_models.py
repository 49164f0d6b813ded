"""Hugging Face ``transformers`` models (random weights, built locally) through EggrollTrainer
unchanged: every projection low-rank, members equal to their dense perturbed models, and a few
generations of training raise the fitness."""
from __future__ import annotations

import pytest
import torch

from conformance.tolerances import assert_parity
from eggroll_torch.nn import EMB_PARAM, MM_PARAM, EggrollTrainer

from nn_support import DEVICES, explicit_member

pytest.importorskip("transformers", reason="the hf extra (pip install -e '.[hf]') is not installed")

from eggroll_torch.examples.hf_language_models import (  # noqa: E402
    build_model, cycling_tokens, mean_log_likelihood, train,
)

# Every weight matrix of the decoder blocks and the head; per block: GPT-2 c_attn, c_proj
# (attention), c_fc, c_proj (MLP); Llama q, k, v, o, gate, up, down.
MATRICES = {"gpt2": 4 * 2, "llama": 7 * 2 + 1}
EMBEDDINGS = {"gpt2": 2, "llama": 1}


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_hf_model_projections_are_low_rank_and_members_match_dense(name, device):
    model = build_model(name).to(device)
    trainer = EggrollTrainer(model, 0.01, 0.05, population_size=4, rank=2, seed=1)
    classes = list(trainer.es_classes.values())
    assert classes.count(MM_PARAM) == MATRICES[name]
    assert classes.count(EMB_PARAM) == EMBEDDINGS[name]
    tokens = cycling_tokens(8).to(device)
    out = trainer.population()(tokens, in_dims=None)
    for i in range(4):
        assert_parity(out[i], explicit_member(trainer, i)(tokens), "reduction", what=f"{name} member {i}")


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize("name", ["gpt2", "llama"])
def test_hf_model_trains_through_the_trainer(name):
    run = train(name, generations=6, population_size=16)
    fitness = run.fitness_mean
    assert all(later > earlier for earlier, later in zip(fitness, fitness[1:])), fitness
    model = run.trainer.module
    tokens = cycling_tokens(16)
    with torch.no_grad():
        trained = mean_log_likelihood(model(tokens)[None], tokens)
        initial = mean_log_likelihood(build_model(name)(tokens)[None], tokens)
    assert trained > initial
