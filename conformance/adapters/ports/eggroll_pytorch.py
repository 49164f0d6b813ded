"""``eggroll-pytorch`` 0.1.0 (github.com/Daulbaev/eggroll-pytorch, source only): the port the
user's compatibility document describes, through its public ``EGGROLLTrainer.train_step``.

Its model contract is ``model(batch, labels=None, is_training=True) -> {"fitness": scalar}``,
called once per member with the whole batch, then once more on the updated model; the wrapper
gives member ``i`` its inputs ``batch[i]``. Gradient clipping is off and fitnesses z-scored, as
upstream has them; ``sgd`` without options is the port's own plain update (``lr * update``).
"""
from __future__ import annotations

from ..base import BackendInfo, Unsupported
from ..trainer import TrainerAdapter


class EggrollPytorchAdapter(TrainerAdapter):
    name = "eggroll-pytorch"

    def info(self) -> BackendInfo:
        import eggroll
        import torch

        return BackendInfo(self.name, eggroll.__version__, "cpu", {"torch": torch.__version__},
                           "a torch.Generator seeded with hash((seed, epoch, thread // 2)) and hash(parameter name) "
                           "(Python's string hash: randomized per process) for each draw")

    def build(self, module, config):
        from eggroll import EGGROLLTrainer
        from torch import nn

        options = config.solver_options
        if config.solver == "sgd" and options:
            raise Unsupported("eggroll-pytorch's plain update has no options; torch.optim.SGD is not optax's sgd")
        kwargs = {} if config.solver == "sgd" else {"betas": (options.get("b1", 0.9), options.get("b2", 0.999)),
                                                    "eps": options.get("eps", 1e-8)}
        if config.solver == "adamw":
            kwargs["weight_decay"] = options.get("weight_decay", 1e-4)

        class Scored(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner, self.calls, self.fitness = module, 0, None

            def forward(self, batch, labels=None, is_training=True):
                self.calls += 1
                output = self.inner(batch[(self.calls - 1) % batch.shape[0]])
                return {"fitness": self.fitness(output[None])[0]}

        scored = Scored()
        trainer = EGGROLLTrainer(scored, "cpu", rank=config.rank, sigma=config.sigma, learning_rate=config.lr,
                                 n_workers=config.population, grad_clip=None, normalize_fitness=True,
                                 base_seed=config.seed, optimizer=None if config.solver == "sgd" else config.solver,
                                 optimizer_kwargs=kwargs, noise_reuse=config.noise_reuse, group_size=config.group_size)
        return trainer, scored

    def step(self, state, inputs, fitness) -> None:
        trainer, scored = state
        scored.calls, scored.fitness = 0, fitness
        trainer.train_step(inputs)
