"""Which ES class each parameter gets, and that EMB_PARAM / EXCLUDED leaves never move."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch.nn import EMB_PARAM, EXCLUDED, MM_PARAM, PARAM, EggrollTrainer, default_es_classes


class _Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        self.norm = nn.LayerNorm(6)
        self.conv = nn.Conv1d(6, 6, 1)
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)
        self.head = nn.Linear(6, 4)
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, tokens):
        h = self.norm(self.embed(tokens))
        h = self.conv(h.transpose(-1, -2)).transpose(-1, -2)
        h = h + self.attn(h, h, h, need_weights=False)[0]
        return self.head(h).mean(-2) * self.scale


def test_classes_defaults():
    classes = default_es_classes(_Tagger())
    assert classes["head.weight"] == MM_PARAM
    assert classes["head.bias"] == PARAM
    assert classes["embed.weight"] == EMB_PARAM
    assert classes["norm.weight"] == PARAM
    assert classes["conv.weight"] == PARAM
    assert classes["attn.in_proj_weight"] == MM_PARAM
    assert classes["attn.in_proj_bias"] == PARAM
    assert classes["attn.out_proj.weight"] == MM_PARAM
    assert classes["scale"] == PARAM


def test_classes_tied_weight_appears_once_under_its_first_path():
    embed = nn.Embedding(5, 4)
    head = nn.Linear(4, 5, bias=False)
    head.weight = embed.weight
    classes = default_es_classes(nn.Sequential(embed, head))
    assert classes == {"0.weight": EMB_PARAM}


@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_classes_emb_and_excluded_get_zero_update(solver):
    torch.manual_seed(0)
    module = _Tagger()
    trainer = EggrollTrainer(
        module, 0.2, 0.1, population_size=4, rank=2, noise_reuse=1, solver=solver,
        es_classes={"head.weight": EXCLUDED, "norm.bias": EXCLUDED, "scale": EMB_PARAM},
    )
    frozen = ["embed.weight", "head.weight", "norm.bias", "scale"]
    before = {path: p.detach().clone() for path, p in module.named_parameters()}
    tokens = torch.randint(0, 10, (4, 3))
    for _ in range(2):
        trainer.step(lambda pop: pop(tokens).sum(-1))
    after = dict(module.named_parameters())
    for path in frozen:
        assert torch.equal(after[path], before[path]), f"{path} moved"
    assert not torch.equal(after["head.bias"], before["head.bias"]), "evolving leaves must move"
    assert not torch.equal(after["conv.weight"], before["conv.weight"]), "evolving leaves must move"


def test_classes_excluded_leaf_is_unperturbed_in_the_forward():
    module = nn.Linear(3, 2)
    trainer = EggrollTrainer(module, 0.5, 0.1, population_size=4, es_classes={"weight": EXCLUDED, "bias": EXCLUDED})
    x = torch.randn(4, 3)
    expected = torch.stack([module(x[i]) for i in range(4)]).detach()
    assert_parity(trainer.population()(x), expected, "reduction", what="members of an unperturbed model")
