"""Language models (upstream's ``hyperscalees.models.llm``): the :class:`~.llm.LLM` base, RWKV-7,
QRWKV6, the ``auto`` model table and ``tokenizer`` modules, and random official-layout checkpoints
(``checkpoints``, ours).

Importing the package loads ``checkpoints``, ``llm``, ``rwkv7`` and ``qrwkv6``, which need nothing
beyond torch; ``auto`` and ``tokenizer`` (the ``llm`` extra's packages when a tokenizer is built)
load only when imported by name. Train any of the models with ``EggrollTrainer`` through
:class:`eggroll_torch.nn.FunctionalModule`.
"""
from . import checkpoints, llm, qrwkv6, rwkv7

__all__ = ["auto", "checkpoints", "llm", "qrwkv6", "rwkv7", "tokenizer"]
