"""The benchmark workloads, per device, and their population-size sweeps.

Every workload runs through the public trainer, ``eggroll_torch.nn.EggrollTrainer``: real networks
(:class:`TrainerWorkload`, noise redrawn each generation, ``noise_reuse=1``, the regime where
noise generation costs the most, and SGD), a population-size sweep over one of them, and on the
CPU upstream's end-to-end MLP example (``tests/end_to_end_test.py`` upstream;
:mod:`jax_reference.examples.mlp_e2e` here).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from conformance.spec import TrajectorySpec


# What a run measures, in priority order: real networks through the public trainer against their
# own inference and jax_reference, upstream's MLP example, the population sweep,
# benchmarks/bench_random.py, and RWKV-7's population forward (benchmarks/rwkv7.py; asked for
# by name, not run by default).
PARTS = ("api", "example", "sweep", "random", "rwkv7")


@dataclass(frozen=True)
class TrainerWorkload:
    """A network a user trains, run through ``eggroll_torch.nn.EggrollTrainer`` (see
    :mod:`benchmarks.nn_models`): ``model`` is ``"blocks"`` (``layers`` pre-LayerNorm residual MLP
    blocks and a linear head, fitness the mean output), ``"gpt"`` (a decoder of ``layers`` blocks
    over ``vocab`` tokens, fitness the mean log-likelihood of fixed tokens) or ``"stack"``
    (``layers`` square bias-free layers with tanh, fitness the mean output). ``members`` x
    ``tokens`` rows, ``noise_reuse=1``, SGD."""

    name: str
    model: str
    width: int
    members: int
    tokens: int
    rank: int
    dtype: str
    layers: int = 2
    vocab: int = 0
    heads: int = 0
    tied: bool = True
    sigma: float = 0.01
    lr: float = 1e-3

    kind = "trainer"

    def config(self) -> dict:
        """The JSON description of the workload."""
        return {"kind": self.kind, **asdict(self)}

    @property
    def bound(self) -> float:
        """``1 / (1 + r / (2T))``: the generation / inference ratio the update's matmul
        (inner size ``N * r / 2`` beside inference's ``N * T``) leaves at best."""
        return 1.0 / (1.0 + self.rank / (2 * self.tokens))


@dataclass(frozen=True)
class MLPExampleWorkload:
    """Upstream's end-to-end example as :class:`conformance.spec.TrajectorySpec` specifies it: MLP
    ``3 -> 16 -> 16 -> 1`` (relu, biases), 64 members, rank 8, sigma 0.2, ``adamw(0.03, b1=0.9,
    b2=0.999)``, ``noise_reuse=0``, fitness ``-(y - 2)**2``."""

    name: str = "mlp_example"
    members: int = TrajectorySpec.num_envs
    in_dim: int = TrajectorySpec.in_dim
    hidden: tuple = TrajectorySpec.hidden_dims
    rank: int = TrajectorySpec.rank
    sigma: float = TrajectorySpec.sigma
    lr: float = TrajectorySpec.lr
    dtype: str = "float32"

    kind = "mlp_example"

    def config(self) -> dict:
        """The JSON description of the workload."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Sweep:
    """Generation throughput against population size for one workload shape.

    Sizes run in the order given (the report sorts them): extremes first, so that a run cut
    short by its time budget still spans the range.
    """

    base: TrainerWorkload
    members: tuple

    def points(self) -> list[TrainerWorkload]:
        """The base workload at each population size."""
        return [replace(self.base, name=f"{self.base.name}_n{n}", members=n) for n in self.members]


CUDA_TRAINER = (
    TrainerWorkload("blocks_d1024_n1024_t32_r16", "blocks", 1024, 1024, 32, 16, "bfloat16"),
    TrainerWorkload("blocks_d2048_n512_t64_r16", "blocks", 2048, 512, 64, 16, "bfloat16"),
    TrainerWorkload("gpt_d1024_l8_t128_n256_r8", "gpt", 1024, 256, 128, 8, "bfloat16", layers=8, vocab=8192,
                    heads=16),
    TrainerWorkload("stack_d1024_n4096_t16_r16_f32", "stack", 1024, 4096, 16, 16, "float32", layers=4),
    TrainerWorkload("stack_d4096_n2048_t64_r16", "stack", 4096, 2048, 64, 16, "bfloat16", layers=4),
    TrainerWorkload("stack_d4096_n8192_t16_r4", "stack", 4096, 8192, 16, 4, "bfloat16", layers=4),
)
CPU_TRAINER = (
    TrainerWorkload("blocks_d256_n512_t16_r4_f32", "blocks", 256, 512, 16, 4, "float32"),
)
QUICK_TRAINER = (
    TrainerWorkload("quick_blocks_d32_n16_t8_r4", "blocks", 32, 16, 8, 4, "float32"),
    TrainerWorkload("quick_gpt_d32_l2_t8_n8_r2", "gpt", 32, 8, 8, 2, "float32", layers=2, vocab=64, heads=4),
)

CUDA_SWEEP = Sweep(TrainerWorkload("sweep_d4096_t16_r4", "stack", 4096, 0, 16, 4, "bfloat16", layers=4),
                   (256, 16384, 2048, 1024, 8192, 512, 4096))
CPU_SWEEP = Sweep(TrainerWorkload("sweep_d64_t16_r4_f32", "stack", 64, 0, 16, 4, "float32", layers=4),
                  (256, 4096, 1024))
# --quick: seconds, for smoke tests.
QUICK_SWEEP = Sweep(TrainerWorkload("quick_sweep_d32_t16_r4_f32", "stack", 32, 0, 16, 4, "float32"), (32,))


def plan(device: str, quick: bool) -> tuple[tuple, MLPExampleWorkload | None, Sweep]:
    """The trainer workloads, upstream's MLP example (CPU only: its ops take microseconds) and
    the sweep to run on ``device`` (``"cpu"`` or ``"cuda"``)."""
    if quick:
        return QUICK_TRAINER, MLPExampleWorkload(), QUICK_SWEEP
    if device == "cuda":
        return CUDA_TRAINER, None, CUDA_SWEEP
    return CPU_TRAINER, MLPExampleWorkload(), CPU_SWEEP
