"""The population forward: member i of the batched call is the model with member i's weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from conformance.tolerances import assert_parity
from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer

from nn_support import DEVICES, explicit_member, small_net

N = 6


def _trainer(module, **kwargs):
    options = dict(population_size=N, rank=2, noise_reuse=1, seed=3)
    options.update(kwargs)
    return EggrollTrainer(module, 0.3, 0.05, **options)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_forward_member_matches_explicit(device, dtype):
    trainer = _trainer(small_net(dtype, device))
    trainer.epoch = 2
    x = torch.randn(N, 4, 5, dtype=dtype, device=device)
    out = trainer.population()(x)
    assert out.shape == (N, 4, 3)
    for i in range(N):
        expected = explicit_member(trainer, i)(x[i])
        assert_parity(out[i], expected, "reduction", what=f"member {i} output")


def test_forward_shared_input_equals_repeated_input():
    trainer = _trainer(small_net())
    x = torch.randn(4, 5)
    pop = trainer.population()
    shared = pop(x, in_dims=None)
    repeated = pop(x.expand(N, -1, -1))
    assert_parity(shared, repeated, "reduction", what="shared vs repeated input")
    for i in range(N):
        assert_parity(shared[i], explicit_member(trainer, i)(x), "reduction", what=f"member {i}")


def test_forward_antithetic_pairs_mirror_and_pairs_differ():
    # Threads 2i and 2i+1 share factors with opposite signs: on a shared input their outputs
    # average to the unperturbed output, and different pairs get different noise.
    net = nn.Linear(5, 3, bias=False)
    trainer = _trainer(net)
    x = torch.randn(4, 5)
    out = trainer.population()(x, in_dims=None)
    base = (x @ net.weight.detach().T).expand(N // 2, -1, -1)
    assert_parity((out[0::2] + out[1::2]) / 2, base, "reduction", what="antithetic pair mean")
    assert not torch.allclose(out[0], out[2])


def test_forward_no_dense_perturbation():
    # The largest tensor the forward creates must stay far below N dense (out, in) matrices.
    width, n = 96, 16
    trainer = EggrollTrainer(nn.Linear(width, width), 0.1, 0.1, population_size=n, rank=2)
    pop = trainer.population()
    sizes = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                sizes.append(out.numel())
            return out

    with Record():
        pop(torch.randn(n, 1, width))
    assert sizes, "the forward ran no tensor operation"
    assert max(sizes) < n * width * width // 8, f"a forward tensor of {max(sizes)} elements suggests dense weights"


def test_forward_open_es_member_by_member_matches_explicit():
    trainer = _trainer(small_net(), noiser="open_es")
    x = torch.randn(N, 2, 5)
    out = trainer.population()(x)
    for i in range(N):
        assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"open_es member {i}")


class _AttentionBlock(nn.Module):
    """Custom forward code unpacking shapes, as transformer blocks do."""

    def __init__(self):
        super().__init__()
        self.attn = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        batch, length, _ = x.shape
        return self.head(self.attn(x).reshape(batch, length, -1).mean(1))


# vmap has no batching rule for CPU flash attention and loops over members; correct, just slower.
@pytest.mark.filterwarnings("ignore:There is a performance drop")
def test_forward_unchanged_transformer_block_matches_explicit():
    torch.manual_seed(1)
    trainer = _trainer(_AttentionBlock().eval())
    assert trainer.es_classes["attn.self_attn.out_proj.weight"] == MM_PARAM
    assert trainer.es_classes["attn.self_attn.in_proj_weight"] == MM_PARAM
    x = torch.randn(N, 3, 4, 8)
    out = trainer.population()(x)
    for i in (0, 1, N - 1):
        assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"member {i}")


class _MatmulUser(nn.Module):
    """Uses a Linear's weight outside F.linear: low-rank routing cannot apply there."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 3)

    def forward(self, x):
        return x @ self.proj.weight.T


def test_forward_mm_weight_used_outside_linear_raises_then_override_works():
    trainer = _trainer(_MatmulUser())
    with pytest.raises(ValueError, match=r"'proj.weight'.*es_classes=\{'proj.weight': PARAM\}"):
        trainer.population()(torch.randn(N, 4))
    trainer = _trainer(_MatmulUser(), es_classes={"proj.weight": PARAM})
    x = torch.randn(N, 4)
    out = trainer.population()(x)
    for i in range(N):
        assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"member {i}")


def test_forward_member_range_equals_slice_of_full_population():
    trainer = _trainer(small_net())
    x = torch.randn(N, 2, 5)
    full = trainer.population()(x)
    part = trainer.population(range(2, 5))
    assert part.size == 3
    assert_parity(part(x[2:5]), full[2:5], "reduction", what="members 2..4")


class _TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x, offset, *, scale=1.0):
        return self.lin(x) * scale + offset


def test_forward_mixed_in_dims_and_keyword_arguments():
    trainer = _trainer(_TwoInputs())
    x, offset = torch.randn(N, 4), torch.randn(3)
    out = trainer.population()(x, offset, in_dims=(0, None), scale=2.0)
    for i in range(N):
        expected = explicit_member(trainer, i)(x[i], offset, scale=2.0)
        assert_parity(out[i], expected, "reduction", what=f"member {i}")
