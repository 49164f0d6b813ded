"""One EGGROLL epoch of LLM fine-tuning (``jax_reference.llm.evolution``'s mirror).

With ``N = parallel_generations`` members and ``G = generations_per_prompt``, epoch ``e``: the
``P = N // G`` prompt indices ``e * P + arange(P)``, each repeated ``G`` times in a row; one
generation per member with its own noise (:mod:`.utils`); the task's fitness; the noiser's
``convert_fitnesses`` (normalised within groups of ``G``) and ``do_updates`` with ``iterinfos =
(full(N, e), arange(N))``. Keys: ``master = key(seed)``; ``fold_in(master, 0 / 1 / 2)`` are the ES,
generation and validation keys (:func:`master_keys`).

Members can be spread over processes: :meth:`Evolution.single_epoch` generates and scores only
the thread ids it is given and asks ``exchange`` for everyone's scores before the (replicated,
identical) update; see :mod:`.train` for the ``torchrun`` driver.
"""
from __future__ import annotations

import dataclasses

import torch

from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.models.common import MM_PARAM, PARAM, simple_es_tree_key
from eggroll_torch.noiser import all_noisers

from .config import EvolutionConfig
from .utils import build_generate_batch, build_validate

__all__ = ["EpochResult", "Evolution", "EvolutionConfig", "master_keys"]


def master_keys(seed, device=None):
    """``(es_key, generation_key, validation_key)``: ``fold_in(key(seed), 0 / 1 / 2)``."""
    master = es_random.key(seed, device=device)
    return tuple(es_random.fold_in(master, i) for i in range(3))


@dataclasses.dataclass
class EpochResult:
    """What one epoch produced (as ``jax_reference.llm.evolution.EpochResult``).

    Attributes:
        noiser_params, params: the state after the update.
        indices (M,): the prompt index of each member this process generated for.
        tokens (M, T): their generations. fitness (N,): every member's raw score, float32.
        stats (dict[str, float]): ``avg/std/max/min/median_fitness``, ``lora_updates``,
            ``nonlora_updates``, and ``validation_score`` when validated.
    """

    noiser_params: dict
    params: dict
    indices: torch.Tensor
    tokens: torch.Tensor
    fitness: torch.Tensor
    stats: dict


def _median(x: torch.Tensor) -> float:
    """``jnp.median``: the mean of the two middle values for an even count."""
    ordered = torch.sort(x).values
    n = ordered.numel()
    return float(ordered[(n - 1) // 2] + ordered[n // 2]) / 2


class Evolution:
    """An LLM evolution run's fixed parts: model, task, noiser, keys and the generation step.

    Args:
        MODEL: the model class (e.g. ``eggroll_torch.models.llm.rwkv7.ScanRWKV``).
        init (CommonInit): ``(config, params, scan_map, es_map)`` as ``load_from_torch`` gives it,
            on the device to run on.
        task: a ``BanditTask`` of ``eggroll_torch.environments.llm_bandits`` whose prompts have
            ``config.generation_length`` tokens.
        config (EvolutionConfig): the run's settings.
        validation_task: the task :attr:`validate` scores (None: no validation).
        members_per_call (int | None): generate at most this many members per population
            forward (None: all of a call's members at once). Results do not depend on it except
            through the kernels a batch size selects; fix it to make runs batch-invariant.
        compile (bool): generate (and validate) with the model's forward under ``torch.compile``
            (see :func:`eggroll_torch.llm.build_generate_batch`); False runs it eagerly.
        cuda_graph (bool): on CUDA, record the token steps as CUDA graphs and replay them (see
            :func:`eggroll_torch.llm.build_generate_batch`; the recording keeps a copy of the
            params); False runs every step's Python, without that copy.
    """

    def __init__(self, MODEL, init, task, config, validation_task=None, *, members_per_call=None,
                 compile=False, cuda_graph=True):
        if not isinstance(cuda_graph, bool):
            raise TypeError(f"cuda_graph must be True or False; got {cuda_graph!r}")
        if not isinstance(config, EvolutionConfig):
            raise TypeError(f"config must be an EvolutionConfig; got {type(config).__name__}")
        if members_per_call is not None and (not isinstance(members_per_call, int) or members_per_call < 1):
            raise ValueError(f"members_per_call must be a positive int or None; got {members_per_call!r}")
        self.MODEL, self.task, self.config = MODEL, task, config
        self.frozen_params, self.params, self.scan_map, self.es_map = init
        self.device = tree.leaves(self.params)[0].device
        self.members_per_call = members_per_call
        self.NOISER = all_noisers[config.noiser]
        es_key, gen_key, valid_key = master_keys(config.seed, self.device)
        self.frozen_noiser_params, self.noiser_params = self.NOISER.init_noiser(
            self.params, config.sigma, config.lr_scale, group_size=config.generations_per_prompt,
            freeze_nonlora=config.freeze_nonlora, noise_reuse=config.noise_reuse, rank=config.rank)
        self.base_evo_keys = simple_es_tree_key(self.params, es_key, self.scan_map)
        self.generate_batch = build_generate_batch(MODEL, self.NOISER, self.frozen_noiser_params, self.frozen_params,
                                                   self.base_evo_keys, gen_key, config.temperature, compile=compile,
                                                   cuda_graph=cuda_graph)
        self.validate = None if validation_task is None else build_validate(
            MODEL, self.frozen_params, self.params, self.base_evo_keys, valid_key, validation_task,
            config.parallel_validations, config.validation_iterations, config.temperature, compile=compile,
            cuda_graph=cuda_graph)
        self.thread_ids = torch.arange(config.parallel_generations, device=self.device)

    def epoch_prompts(self, epoch, members=None):
        """``(indices (M,), prompts (M, T))`` of epoch ``epoch`` for the thread ids ``members``
        (a ``range``; default all ``N``)."""
        members = range(self.config.parallel_generations) if members is None else members
        per_epoch, group = self.config.prompts_per_epoch, self.config.generations_per_prompt
        unique = torch.arange(per_epoch) + epoch * per_epoch
        prompts = torch.as_tensor(self.task.get_input(unique))
        rows = torch.arange(members.start, members.stop) // group
        return unique[rows], prompts[rows]

    def generate(self, noiser_params, params, prompts, thread_ids, epoch):
        """Generations ``(M, T)`` of the members ``thread_ids (M,)``, ``members_per_call`` at a time."""
        step = self.members_per_call or max(1, len(thread_ids))
        return torch.cat([self.generate_batch(noiser_params, params, prompts[i:i + step], thread_ids[i:i + step], epoch)
                          for i in range(0, len(thread_ids), step)])

    def do_update(self, noiser_params, params, raw_scores, epoch):
        """``(noiser_params, params, rms)``: the update of epoch ``epoch`` from all ``N`` raw scores,
        and each leaf's RMS change."""
        iterinfos = (torch.full((raw_scores.numel(),), int(epoch), dtype=torch.int32, device=self.device),
                     self.thread_ids)
        fitnesses = self.NOISER.convert_fitnesses(self.frozen_noiser_params, noiser_params, raw_scores)
        noiser_params, new_params = self.NOISER.do_updates(self.frozen_noiser_params, noiser_params, params,
                                                           self.base_evo_keys, fitnesses, iterinfos, self.es_map)
        rms = tree.map(lambda x, y: torch.sqrt(torch.mean((x.float() - y.float()) ** 2)), params, new_params)
        return noiser_params, new_params, rms

    def _mean_change(self, rms, es_class):
        picked = [float(d) for d, c in zip(tree.leaves(rms), tree.leaves(self.es_map)) if c == es_class]
        return sum(picked) / len(picked) if picked else float("nan")

    def single_epoch(self, noiser_params, params, epoch, *, members=None, exchange=None):
        """Validate if due, then prompts, generation, fitness and update of epoch ``epoch``.

        ``members`` (a ``range`` of thread ids, default all) are generated and scored here;
        ``exchange(local_scores (M,)) -> (N,)`` must return every member's raw scores in thread-id
        order (required when ``members`` is not the whole population).
        """
        everyone = range(self.config.parallel_generations)
        members = everyone if members is None else members
        if members != everyone and exchange is None:
            raise ValueError("single_epoch: a subset of members needs exchange= to collect every member's scores")
        stats = {}
        due = self.config.validate_every and epoch % self.config.validate_every == 0
        if self.validate is not None and due:
            stats["validation_score"] = float(self.validate(params, epoch))
        indices, prompts = self.epoch_prompts(epoch, members)
        tokens = self.generate(noiser_params, params, prompts, self.thread_ids[members.start:members.stop], epoch)
        local = torch.as_tensor(self.task.get_batch_fitness(indices, tokens.cpu()), dtype=torch.float32)
        fitness = local if exchange is None else exchange(local)
        fitness = fitness.to(self.device)
        noiser_params, params, rms = self.do_update(noiser_params, params, fitness, epoch)
        host = fitness.cpu()
        stats |= {
            "avg_fitness": float(host.mean()), "std_fitness": float(host.std(unbiased=False)),
            "max_fitness": float(host.max()), "min_fitness": float(host.min()),
            "median_fitness": _median(host),
            "lora_updates": self._mean_change(rms, MM_PARAM), "nonlora_updates": self._mean_change(rms, PARAM),
        }
        return EpochResult(noiser_params, params, indices, tokens, fitness, stats)
