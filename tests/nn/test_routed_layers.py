"""Every weight matrix of torch's attention and recurrent layers gets low-rank noise, and a member
of the population forward equals the layer run with that member's dense perturbed weights."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from conformance.tolerances import assert_parity
from eggroll_torch.nn import MM_PARAM, PARAM, EggrollTrainer, default_es_classes

from nn_support import DEVICES, explicit_member

# (label, layer factory, how the probe calls it on x (B, T, 8))
LAYERS = {
    "attention.self": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                       lambda m, x: m(x, x, x)[0]),
    "attention.self_no_weights": (lambda: nn.MultiheadAttention(8, 2, batch_first=True),
                                  lambda m, x: m(x, x, x, need_weights=False)[0]),
    "attention.cross_separate_projections": (
        lambda: nn.MultiheadAttention(8, 2, kdim=6, vdim=4, add_bias_kv=True),
        lambda m, x: m(x.transpose(0, 1), x[..., :6].transpose(0, 1), x[..., :4].transpose(0, 1))[0]),
    "attention.masks_zero_attn": (
        lambda: nn.MultiheadAttention(8, 2, batch_first=True, add_zero_attn=True),
        lambda m, x: m(x, 2 * x, 2 * x, key_padding_mask=_padding(x), attn_mask=_causal(x),
                       average_attn_weights=False)[1]),
    "attention.unbatched": (lambda: nn.MultiheadAttention(8, 2), lambda m, x: m(x[0], x[0], x[0])[0]),
    "recurrent.gru_bidirectional": (lambda: nn.GRU(8, 5, num_layers=2, bidirectional=True, batch_first=True),
                                    lambda m, x: torch.cat([m(x)[0].flatten(), m(x)[1].flatten()])),
    "recurrent.lstm_projection": (lambda: nn.LSTM(8, 6, num_layers=2, proj_size=3),
                                  lambda m, x: torch.cat([t.flatten() for t in _lstm(m, x.transpose(0, 1))])),
    "recurrent.rnn_relu_no_bias": (lambda: nn.RNN(8, 4, nonlinearity="relu", bias=False),
                                   lambda m, x: m(x[0], torch.ones(1, 4, device=x.device))[1]),
    "recurrent.gru_cell": (lambda: nn.GRUCell(8, 4), lambda m, x: m(x[:, 0])),
    "recurrent.lstm_cell": (lambda: nn.LSTMCell(8, 4), lambda m, x: torch.cat(m(x[:, 0]), -1)),
    "recurrent.rnn_tanh_cell": (lambda: nn.RNNCell(8, 4), lambda m, x: m(x[:, 0], x[:, 1, :4])),
}
# noiser and population size -> which population path runs: the pair engine (EGGROLL, even N),
# vectorized low-rank factors (odd N), member by member through do_mm (OpenES).
PATHS = {"pair_engine": ("eggroll", 4), "vectorized": ("eggroll", 3), "member_by_member": ("open_es", 4)}


def _padding(x):
    return torch.tensor([[False, False, True]], device=x.device).expand(x.shape[0], 3)


def _causal(x):
    return torch.triu(torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device), 1)


def _lstm(m, x):
    output, (h, c) = m(x)
    return output, h, c


class _Probe(nn.Module):
    def __init__(self, layer, call):
        super().__init__()
        self.layer, self._call = layer, call

    def forward(self, x):
        return self._call(self.layer, x)


def _trainer(module, noiser="eggroll", n=4, **kwargs):
    return EggrollTrainer(module.eval(), 0.1, 0.01, population_size=n, rank=2, noiser=noiser, seed=5, **kwargs)


# vmap has no batching rule for CPU attention kernels and loops over members; correct, just slower.
@pytest.mark.filterwarnings("ignore:There is a performance drop")
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("label", list(LAYERS))
def test_routed_layer_member_matches_dense_member(label, path, device):
    torch.manual_seed(0)
    make, call = LAYERS[label]
    noiser, n = PATHS[path]
    trainer = _trainer(_Probe(make(), call).to(device), noiser, n)
    matrices = [p for p, c in trainer.es_classes.items() if c == MM_PARAM]
    assert matrices, "the layer's matrices should default to MM_PARAM"
    x = torch.randn(n, 2, 3, 8, device=device)
    out = trainer.population()(x)
    # cuDNN's recurrent kernels compute in TF32 by default; the dense reference must not.
    with torch.backends.cudnn.flags(enabled=False):
        for i in range(n):
            assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"{label} member {i}")


def test_routed_layer_classes_table():
    classes = default_es_classes(nn.ModuleDict({
        "attn": nn.MultiheadAttention(8, 2, kdim=6, vdim=4, add_bias_kv=True),
        "lstm": nn.LSTM(8, 6, num_layers=2, proj_size=3, bidirectional=True),
        "cell": nn.GRUCell(8, 4),
    }))
    matrices = {p for p, c in classes.items() if c == MM_PARAM}
    assert matrices == {
        "attn.q_proj_weight", "attn.k_proj_weight", "attn.v_proj_weight", "attn.out_proj.weight",
        *(f"lstm.weight_{kind}_l{layer}{suffix}" for kind in ("ih", "hh", "hr") for layer in (0, 1)
          for suffix in ("", "_reverse")),
        "cell.weight_ih", "cell.weight_hh",
    }
    assert all(classes[p] == PARAM for p in classes if p not in matrices)


class _TransposedUser(nn.Module):
    """A weight stored ``(in, out)`` and used as ``x @ W``, the way ``transformers``' Conv1D does."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(0.3 * torch.randn(6, 5))
        self.bias = nn.Parameter(torch.randn(5))

    def forward(self, x):
        flat = torch.addmm(self.bias, x.reshape(-1, 6), self.weight).reshape(*x.shape[:-1], 5)
        return flat + torch.matmul(x, self.weight) + x @ self.weight


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("path", list(PATHS))
def test_routed_matmul_of_a_transposed_matrix_matches_dense_member(path, device):
    torch.manual_seed(0)
    noiser, n = PATHS[path]
    trainer = _trainer(_TransposedUser().to(device), noiser, n, es_classes={"weight": MM_PARAM})
    x = torch.randn(n, 3, 6, device=device)
    out = trainer.population()(x)
    for i in range(n):
        assert_parity(out[i], explicit_member(trainer, i)(x[i]), "reduction", what=f"member {i}")


class _Slicer(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 3)

    def forward(self, x):
        return x @ self.gru.weight_ih_l0[:3]


def test_routed_matrix_misuse_names_parameter_and_override():
    trainer = _trainer(_Slicer())
    with pytest.raises(ValueError, match=r"'gru.weight_ih_l0'.*es_classes=\{'gru.weight_ih_l0': PARAM\}"):
        trainer.population()(torch.randn(4, 2, 4))


class _Packed(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 3)

    def forward(self, packed):
        return self.gru(packed)[1]


@pytest.mark.parametrize("path", list(PATHS))
def test_routed_recurrent_packed_sequence_is_refused_with_the_fix(path):
    noiser, n = PATHS[path]
    trainer = _trainer(_Packed(), noiser, n)
    packed = nn.utils.rnn.pack_padded_sequence(torch.randn(5, 2, 4), [5, 4])
    with pytest.raises(ValueError, match="PackedSequence.*pad_packed_sequence"):
        trainer.population()(packed, in_dims=None)


def test_routed_recurrent_trains_without_dense_noise():
    torch.manual_seed(0)
    module = _Probe(nn.GRU(8, 5, batch_first=True), lambda m, x: m(x)[1].sum())
    trainer = _trainer(module, n=8)
    before = {p: t.clone() for p, t in module.named_parameters()}
    x = torch.randn(3, 4, 8)
    for _ in range(3):
        trainer.step(lambda population: population(x, in_dims=None))
    assert all(not torch.equal(before[p], t) for p, t in module.named_parameters())
