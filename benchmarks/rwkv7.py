"""RWKV-7 over a population (``python -m benchmarks run --parts rwkv7``): the torch model's
population forward with EGGROLL noise against its own pure inference and against jax_reference
run as upstream's LLM experiments run it.

One workload per device: on CUDA the published 0.1B shape (random weights from
``rwkv7_state_dict``), 256 members, 256 tokens, bfloat16, as ``ScanRWKV``; on the CPU (and with
``--quick``) a small shape, since the CPU runs the token loop. Noise as upstream's
``llm_experiments`` defaults: rank 1, sigma 1e-3, ``noise_reuse=1`` (fresh noise every epoch,
each call a new epoch), ``freeze_nonlora=True``. Three measurements, each a forward over all
``N x T`` tokens returning the logits ``(N, T, V)`` and the new state:

- ``generation``: ``ScanRWKV.forward`` with ``EggRoll`` and the population ``iterinfo``
  ``(epochs, thread_ids)``, every member at once.
- ``inference``: the same call with the identity ``Noiser``: the population ``iterinfo`` only
  gives the activations their member axis (without one the model reads its tokens as a single
  stream), and every weight is used as it is, so this is plain batched inference.
- ``jax_generation``: ``jax_reference``'s ``ScanRWKV.forward`` for one member with ``iterinfo =
  (epoch, thread_idx)``, ``jax.vmap``'ed over ``thread_idx`` and the tokens and jitted, as
  upstream's ``generate_thread`` is.

Ratios: ``torch_over_jax`` (goal >= 1.5) and ``generation_over_inference`` against the bound ``1 /
(1 + r / (2T))`` (goal >= 0.85 of it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

ES_SEED = 1
TOKEN_SEED = 2
LR = 1.0


@dataclass(frozen=True)
class RWKV7Workload:
    """``members`` x ``tokens`` through an RWKV-7 of ``shape`` (``rwkv7_state_dict``'s keywords)."""

    name: str
    shape: dict = field(hash=False)
    members: int
    tokens: int
    rank: int = 1
    sigma: float = 1e-3
    dtype: str = "bfloat16"
    variant: str = "ScanRWKV"

    kind = "rwkv7"

    def config(self) -> dict:
        """The JSON description of the workload."""
        return {"kind": self.kind, **asdict(self)}

    @property
    def bound(self) -> float:
        """``1 / (1 + r / (2T))``, the generation / inference ratio the project holds its
        generations to."""
        return 1.0 / (1.0 + self.rank / (2 * self.tokens))


def workload(device: str, quick: bool) -> RWKV7Workload:
    """The RWKV-7 workload of a run on ``device``."""
    from eggroll_torch.models.llm.checkpoints import RWKV7_SHAPES

    if quick:
        shape = {"n_layer": 2, "n_head": 2, "head_size": 8, "vocab_size": 64, "lora_dims": (8, 8, 4, 8)}
        return RWKV7Workload("quick_rwkv7_l2_h2_s8_n4_t8", shape, 4, 8, dtype="float32")
    if device == "cuda":
        return RWKV7Workload("rwkv7_0.1B_n256_t256_r1", dict(RWKV7_SHAPES["0.1B"]), 256, 256)
    shape = {"n_layer": 2, "n_head": 4, "head_size": 32, "vocab_size": 1024, "lora_dims": (16, 16, 8, 16)}
    return RWKV7Workload("rwkv7_l2_h4_s32_n16_t32_f32", shape, 16, 32, dtype="float32")


def _state_dict(wl: RWKV7Workload) -> dict:
    from eggroll_torch.models.llm.checkpoints import rwkv7_state_dict

    return rwkv7_state_dict(0, **wl.shape)


def _tokens(wl: RWKV7Workload) -> np.ndarray:
    return np.random.default_rng(TOKEN_SEED).integers(0, wl.shape["vocab_size"], (wl.members, wl.tokens))


class TorchRWKV7:
    """The torch model, its keys and noiser state and the tokens, on ``device``."""

    def __init__(self, wl: RWKV7Workload, device: str):
        from eggroll_torch import random as es_random
        from eggroll_torch import tree
        from eggroll_torch.models import common
        from eggroll_torch.models.llm import rwkv7
        from eggroll_torch.noiser.eggroll import EggRoll

        self.wl, self.device = wl, device
        self.model = getattr(rwkv7, wl.variant)
        init = self.model.load_from_torch(_state_dict(wl), None, getattr(torch, wl.dtype))
        self.params = tree.map(lambda x: x.to(device), init.params)
        self.keys = common.simple_es_tree_key(self.params, es_random.key(ES_SEED, device=device), init.scan_map)
        self.frozen, self.noiser_params = EggRoll.init_noiser(self.params, wl.sigma, LR, rank=wl.rank, noise_reuse=1,
                                                              freeze_nonlora=True)
        self.tokens = torch.from_numpy(_tokens(wl)).to(device)
        self.state = self.model.default_state(self.params, None).expand(wl.members, -1, -1, -1)
        self.threads = torch.arange(wl.members, device=device)
        self.epoch = 0

    def _forward(self, noiser, frozen, noiser_params):
        self.epoch += 1
        # Built on the device: a tensor made from host data would wait for the queued work.
        epochs = torch.full((self.wl.members,), self.epoch, dtype=torch.int32, device=self.device)
        with torch.no_grad():
            return self.model.forward(noiser, frozen, noiser_params, None, self.params, self.keys,
                                      (epochs, self.threads), self.tokens, self.state, self.wl.tokens, None)

    def generation(self):
        """Callable: one noised population forward, a new epoch each call."""
        from eggroll_torch.noiser.eggroll import EggRoll

        return lambda: self._forward(EggRoll, self.frozen, self.noiser_params)

    def inference(self):
        """Callable: the same forward with the identity noiser (no noise anywhere)."""
        from eggroll_torch.noiser.base_noiser import Noiser

        return lambda: self._forward(Noiser, {}, {})


def jax_generation(wl: RWKV7Workload):
    """Callable: jax_reference's forward vmapped over members and jitted (compiled here), a new
    epoch each call."""
    import jax
    import jax.numpy as jnp

    from jax_reference.models import common
    from jax_reference.models.llm import rwkv7
    from jax_reference.noiser.eggroll import EggRoll

    model = getattr(rwkv7, wl.variant)
    init = model.load_from_torch(_state_dict(wl), None, getattr(jnp, wl.dtype))
    device = jax.devices()[0]
    params = jax.device_put(init.params, device)
    keys = jax.device_put(common.simple_es_tree_key(params, jax.random.key(ES_SEED), init.scan_map), device)
    frozen, noiser_params = EggRoll.init_noiser(params, wl.sigma, LR, rank=wl.rank, noise_reuse=1,
                                                freeze_nonlora=True)
    tokens = jax.device_put(jnp.asarray(_tokens(wl), dtype=jnp.int32), device)
    threads = jnp.arange(wl.members)

    def member(noiser_params, params, keys, tokens, thread_idx, epoch):
        state = model.default_state(params, None)
        return model.forward(EggRoll, frozen, noiser_params, None, params, keys, (epoch, thread_idx), tokens, state)

    batched = jax.vmap(member, in_axes=(None, None, None, 0, 0, None))
    compiled = jax.jit(batched).lower(noiser_params, params, keys, tokens, threads, jnp.int32(1)).compile()
    epoch = [0]

    def step():
        epoch[0] += 1
        return compiled(noiser_params, params, keys, tokens, threads, jnp.int32(epoch[0]))

    return step


def ratios(wl: RWKV7Workload, m: dict) -> dict:
    """Throughput ratios of the three measurements (see the module's docstring)."""
    from .ratios import _ratio

    gen_over_inf = _ratio(m, "inference", "generation")
    return {
        "torch_over_jax": _ratio(m, "jax_generation", "generation"),
        "generation_over_inference": gen_over_inf,
        "update_bound": wl.bound,
        "generation_over_bound": None if gen_over_inf is None else gen_over_inf / wl.bound,
    }


def run(runner) -> dict:
    """Measure the workload of ``runner``'s device with ``runner.measure``; returns the entry
    (name, config, measurements, ratios) and prints the ratios."""
    wl = workload(runner.device, runner.quick)
    entry = {"name": wl.name, "config": wl.config(), "measurements": {}}
    m = entry["measurements"]
    side = runner.build_side(entry, lambda: TorchRWKV7(wl, runner.device))
    if side is not None:
        runner.measure(wl.name, "generation", side.generation, into=m, min_reps=5)
        runner.measure(wl.name, "inference", side.inference, into=m, min_reps=5)
        del side
    runner.measure(wl.name, "jax_generation", lambda: jax_generation(wl), framework="jax", into=m, min_reps=5)
    entry["ratios"] = ratios(wl, m)
    shown = "  ".join(f"{k} {v:.3f}" for k, v in entry["ratios"].items() if v is not None)
    print(f"{wl.name:32s} {shown}  (goals: torch_over_jax >= 1.5, generation_over_bound >= 0.85)", flush=True)
    return entry
