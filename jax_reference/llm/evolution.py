"""One EGGROLL epoch of LLM fine-tuning (the loop of upstream's ``general_do_evolution.py``).

With ``N = parallel_generations`` members and ``G = generations_per_prompt``, epoch ``e``:

1. prompts: the ``P = N // G`` task indices ``e * P + arange(P)``, each repeated ``G`` times in a
   row (member ``i`` answers prompt index ``e * P + i // G``);
2. generation: member ``i`` (thread id ``i``) generates with its own noise, ``iterinfo = (e, i)``,
   and the keys of :mod:`.utils`;
3. fitness: the task's ``get_batch_fitness(indices, tokens)``;
4. update: the noiser's ``convert_fitnesses`` (normalised within groups of ``G``, the
   ``group_size`` it is initialised with) and ``do_updates`` with ``iterinfos = (full(N, e),
   arange(N))``.

Keys: ``master = jax.random.key(seed)``; ``fold_in(master, 0)`` is the ES key of
``simple_es_tree_key``, ``fold_in(master, 1)`` the generation key, ``fold_in(master, 2)`` the
validation key (:func:`master_keys`). Upstream's script reads these settings from its command line
(``thinking_length + answer_length`` is ``generation_length``); :class:`EvolutionConfig` (shared
with ``eggroll_torch.llm``) holds them.
"""
import dataclasses
import operator

import jax
import jax.numpy as jnp

from eggroll_torch.llm.config import EvolutionConfig
from jax_reference.models.common import MM_PARAM, PARAM, simple_es_tree_key
from jax_reference.noiser import all_noisers

from .utils import build_generate_batch, build_validate

__all__ = ["EpochResult", "Evolution", "EvolutionConfig", "master_keys"]


def master_keys(seed):
    """``(es_key, generation_key, validation_key)``: ``fold_in(jax.random.key(seed), 0 / 1 / 2)``."""
    master = jax.random.key(seed)
    return tuple(jax.random.fold_in(master, i) for i in range(3))


@dataclasses.dataclass
class EpochResult:
    """What one epoch produced.

    Attributes:
        noiser_params, params: the state after the update.
        indices (N,): each member's prompt index. tokens (N, T): the generations.
        fitness (N,): the raw task scores, float32.
        stats (dict[str, float]): ``avg/std/max/min/median_fitness``, ``lora_updates`` and
            ``nonlora_updates`` (mean over ``MM_PARAM`` / ``PARAM`` leaves of each leaf's RMS
            change; NaN where there are none), and ``validation_score`` when validated.
    """

    noiser_params: dict
    params: dict
    indices: jax.Array
    tokens: jax.Array
    fitness: jax.Array
    stats: dict


class Evolution:
    """An LLM evolution run's fixed parts: model, task, noiser, keys and the compiled steps.

    Args:
        MODEL: the model class (e.g. ``jax_reference.models.llm.rwkv7.ScanRWKV``).
        init (CommonInit): ``(config, params, scan_map, es_map)`` as ``load_from_torch`` gives it.
        task: a ``BanditTask`` whose prompts have ``config.generation_length`` tokens.
        config (EvolutionConfig): the run's settings.
        validation_task: the task :meth:`validate` scores (None: no validation).

    :attr:`noiser_params` and :attr:`params` start as the noiser's initial state and ``init``'s
    params, placed on ``jax.devices()[0]``; :meth:`single_epoch` returns new ones and the caller
    passes them back.
    """

    def __init__(self, MODEL, init, task, config, validation_task=None):
        if not isinstance(config, EvolutionConfig):
            raise TypeError(f"config must be an EvolutionConfig; got {type(config).__name__}")
        self.MODEL, self.task, self.config = MODEL, task, config
        self.frozen_params, self.params, self.scan_map, self.es_map = init
        # load_from_torch commits the params to the host CPU; upstream's script copies them onto
        # its accelerator mesh, and left where they are every jitted step would run on XLA:CPU.
        self.params = jax.device_put(self.params, jax.devices()[0])
        self.NOISER = all_noisers[config.noiser]
        es_key, gen_key, valid_key = master_keys(config.seed)
        self.frozen_noiser_params, self.noiser_params = self.NOISER.init_noiser(
            self.params, config.sigma, config.lr_scale, group_size=config.generations_per_prompt,
            freeze_nonlora=config.freeze_nonlora, noise_reuse=config.noise_reuse, rank=config.rank)
        # The update returns sigma as a 0-d array; starting from one too keeps the jitted
        # generation from compiling a second time for the Python float.
        self.noiser_params = jax.tree.map(jnp.asarray, self.noiser_params)
        self.base_evo_keys = simple_es_tree_key(self.params, es_key, self.scan_map)
        self.generate_batch = build_generate_batch(MODEL, self.NOISER, self.frozen_noiser_params, self.frozen_params,
                                                   self.base_evo_keys, gen_key, config.temperature)
        self.validate = None if validation_task is None else build_validate(
            MODEL, self.frozen_params, self.params, self.base_evo_keys, valid_key, validation_task,
            config.parallel_validations, config.validation_iterations, config.temperature)
        self.thread_ids = jnp.arange(config.parallel_generations)
        self.do_update = jax.jit(self._do_update)

    def epoch_prompts(self, epoch):
        """``(indices (N,), prompts (N, T))`` of epoch ``epoch`` (see the module docstring)."""
        per_epoch, group = self.config.prompts_per_epoch, self.config.generations_per_prompt
        unique = jnp.arange(per_epoch) + epoch * per_epoch
        prompts = jnp.asarray(self.task.get_input(unique))
        return jnp.repeat(unique, group, axis=0), jnp.repeat(prompts, group, axis=0)

    def _do_update(self, noiser_params, params, raw_scores, epoch):
        iterinfos = (jnp.full(raw_scores.size, epoch, dtype=jnp.int32), self.thread_ids)
        fitnesses = self.NOISER.convert_fitnesses(self.frozen_noiser_params, noiser_params, raw_scores)
        noiser_params, new_params = self.NOISER.do_updates(self.frozen_noiser_params, noiser_params, params,
                                                           self.base_evo_keys, fitnesses, iterinfos, self.es_map)
        rms = jax.tree.map(lambda x, y: jnp.sqrt(jnp.mean((x - y) ** 2)), params, new_params)
        return noiser_params, new_params, rms

    def _mean_change(self, rms, es_class):
        picked = jax.tree.map(lambda d, c: d if c == es_class else 0.0, rms, self.es_map)
        count = jax.tree.map(lambda c: 1.0 if c == es_class else 0.0, self.es_map)
        return jax.tree.reduce(operator.add, picked) / jax.tree.reduce(operator.add, count)

    def single_epoch(self, noiser_params, params, epoch):
        """Validate if due, then prompts, generation, fitness and update of epoch ``epoch``."""
        stats = {}
        due = self.config.validate_every and epoch % self.config.validate_every == 0
        if self.validate is not None and due:
            stats["validation_score"] = float(self.validate(params, epoch))
        indices, prompts = self.epoch_prompts(epoch)
        tokens = self.generate_batch(noiser_params, params, prompts, self.thread_ids, epoch)
        fitness = jnp.asarray(self.task.get_batch_fitness(indices, tokens), dtype=jnp.float32)
        noiser_params, params, rms = self.do_update(noiser_params, params, fitness, epoch)
        stats |= {
            "avg_fitness": float(jnp.mean(fitness)), "std_fitness": float(jnp.std(fitness)),
            "max_fitness": float(jnp.max(fitness)), "min_fitness": float(jnp.min(fitness)),
            "median_fitness": float(jnp.median(fitness)),
            "lora_updates": float(self._mean_change(rms, MM_PARAM)),
            "nonlora_updates": float(self._mean_change(rms, PARAM)),
        }
        return EpochResult(noiser_params, params, indices, tokens, fitness, stats)
