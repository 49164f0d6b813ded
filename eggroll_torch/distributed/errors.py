"""The two ways a distributed run stops on purpose instead of hanging or drifting apart."""
from __future__ import annotations


class RankFailureError(RuntimeError):
    """A rank died, hung past the timeout, or failed while evaluating its members.

    Raised on every rank that notices. The process group cannot be used afterwards: end the
    processes and resume from the last checkpoint (``DistributedTrainer.load_checkpoint``), on
    any number of ranks.
    """


class DivergenceError(RuntimeError):
    """Ranks that must hold bit-identical parameters and optimizer state do not.

    Raised on every rank by the cross-rank checksum. It means the ranks did not run the same
    computation (different models, seeds or library versions, a non-deterministic kernel, or a
    rank whose state was changed outside the trainer); results after this point are not the
    single-process run's.
    """
