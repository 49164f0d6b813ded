"""LLM bandit tasks with JAX arrays (upstream's ``hyperscalees.environments.llm_bandits``).

A task turns prompt indices into token prompts and scores whole generations:

- ``get_input(indices)``: ``(B, max_num_steps)`` int32 prompts, 0-padded (0 is the token the
  generator replaces by its own samples);
- ``get_batch_fitness(indices, full_generations)``: ``(B,)`` float32 rewards for the ``(B, T)``
  token rows the generator produced (the prompt tokens followed by the sampled ones).

Toy tasks score tokens with the same jitted, vmapped ``jnp`` functions as upstream; the text
tasks decode with the task's ``decoding_tokenizer`` and score with
:mod:`eggroll_torch.environments.bandit_text` (pure Python, shared with the torch side; see its
docstring for the tokenizer protocol). No task draws random numbers.

Data that upstream loads from the Hugging Face hub is read from ``data_path`` (a local
``.jsonl``/``.json``/``.parquet`` file of the split's rows); with ``data_path=None`` the hub split
is loaded through the optional ``datasets`` package, as upstream does. The registries call a
class with the three positional arguments only, so for a hub-backed task bind the file first:
``functools.partial(all_tasks["gsm8k"], data_path="gsm8k_train.jsonl")``.
"""
import jax
import jax.numpy as jnp
import numpy as np

from eggroll_torch.environments import bandit_text as bt
from eggroll_torch.environments.bandit_text import (  # noqa: F401  (upstream's module-level names)
    RG_DATASETS, _build_aime_prompt, _get_aime_answer, _parse_gold_cached, _score_with_math_verify, _to_camel,
    check_accuracy, extract_ground_truth, extract_predicted_answer, get_padded_prompt, make_conversation,
    make_rg_prompt, safe_decode, single_fitness, strip_thoughts)

__all__ = [
    "RG_DATASETS", "BanditTask", "ToyTask", "FastZero", "UniqueTok", "RepTok", "Digits", "GSM8KTrain", "GSM8KTest",
    "GSM8KSFT", "ReasoningGymTrain", "ReasoningGymTest", "AIMETrain", "AIMETrainAIME", "AIME24Test", "AIME25Test",
    "CountdownNTrainRG", "CountdownNValRG", "all_tasks", "validation_tasks", "safe_decode", "get_padded_prompt",
    "strip_thoughts", "make_rg_prompt", "make_conversation", "extract_predicted_answer", "extract_ground_truth",
    "check_accuracy", "single_fitness",
]


class BanditTask:
    """A prompt source and reward function for LLM evolution.

    Args:
        encoding_tokenizer: encodes prompts (``encode(str) -> list[int]``).
        decoding_tokenizer: decodes generations (``decode(int array) -> str``).
        max_num_steps: the token length ``T`` of prompts and generations.
    """

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps):
        self.encoding_tokenizer = encoding_tokenizer
        self.decoding_tokenizer = decoding_tokenizer
        self.max_num_steps = max_num_steps

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")

    def get_input(self, indices):
        """``(B, max_num_steps)`` int32 prompts for the ``B`` prompt indices."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_input")

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32 rewards of the ``(B, T)`` generations of prompts ``indices``."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_batch_fitness")


def _zero_prompts(indices, max_num_steps):
    # Toy tasks have an empty prompt: the generator samples every position.
    return jnp.zeros(indices.shape + (max_num_steps,), dtype=jnp.int32)


# ----------------------------------------------------------------------------------------------
# Toy tasks: rewards of the sampled tokens alone (the first token, the prompt's 0, is dropped)
# ----------------------------------------------------------------------------------------------
class ToyTask(BanditTask):
    """A task with all-zero prompts scored by ``single_fitness(tokens (T-1,)) -> float32 scalar``,
    jitted and vmapped over the batch. ``len()`` raises ``ValueError``: ``__len__`` is -1."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, single_fitness):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self._batch_fitness = jax.jit(jax.vmap(single_fitness))

    def __len__(self):
        return -1

    def get_input(self, indices):
        """All-zero int32 prompts of shape ``indices.shape + (max_num_steps,)``."""
        return _zero_prompts(indices, self.max_num_steps)

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32: the task's score of each row of ``full_generations[:, 1:]``."""
        return self._batch_fitness(full_generations[:, 1:])


def _minus_first_zero(tokens):
    """``-(position of the first 0)``, or ``-2 * len(tokens)`` without one; a leading 0 gives -0.0."""
    first = jnp.nonzero(tokens == 0, size=1, fill_value=tokens.shape[0] * 2)[0][0]
    return -first.astype(jnp.float32)


def _distinct_count(tokens):
    """How many distinct values ``tokens`` holds (0 for an empty row)."""
    counts = jnp.unique_counts(tokens, size=tokens.shape[0]).counts
    return jnp.sum(jnp.where(counts == 0, 0, 1)).astype(jnp.float32)


def _largest_count(tokens):
    """How often the most frequent value occurs (an empty row raises ``ValueError``)."""
    return jnp.max(jnp.unique_counts(tokens, size=tokens.shape[0]).counts).astype(jnp.float32)


class FastZero(ToyTask):
    """Reward ``-(steps before the first 0 token)``: emit the stop token as early as possible."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps, _minus_first_zero)


class UniqueTok(ToyTask):
    """Reward: the number of distinct tokens generated."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps, _distinct_count)


class RepTok(ToyTask):
    """Reward: how often the most repeated token occurs."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps, _largest_count)


class Digits(BanditTask):
    """Reward: the number of digit characters in the decoded generation (first token dropped,
    decoding stops at the next 0). All-zero prompts; ``len()`` raises ``ValueError`` (-1)."""

    def __len__(self):
        return -1

    def get_input(self, indices):
        """All-zero int32 prompts of shape ``indices.shape + (max_num_steps,)``."""
        return _zero_prompts(indices, self.max_num_steps)

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32 digit counts of the rows of ``full_generations`` (B, T)."""
        counts = bt.digit_counts(np.array(full_generations), self.decoding_tokenizer)
        return jnp.array(counts, dtype=jnp.float32)


# ----------------------------------------------------------------------------------------------
# Tasks over a dataset of rows
# ----------------------------------------------------------------------------------------------
def _prompt_array(rows):
    """``(B, T)`` int32 prompts; no rows give upstream's ``jnp.array([])``, float32 of shape (0,)."""
    return jnp.array(rows)


class GSM8KTrain(BanditTask):
    """GSM8K (``openai/gsm8k``, config ``main``, train split) with the regex answer scorer.

    Prompt: ``"User: <question>\\n\\nAssistant: <think"``. Reward 1.0 when the last number after
    the first ``</think>`` of the decoded generation equals the text after ``####`` of the answer.

    Args:
        data_path: local file of the split's rows (``question``, ``answer``); None loads the
            hub split with the ``datasets`` package.
    """

    hub = bt.GSM8K_TRAIN

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, data_path=None):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self.dataset = bt.task_rows(data_path, self.hub, make_conversation, ("question", "answer"))

    def __len__(self):
        return len(self.dataset)

    def _prompt_text(self, row):
        return row["prompt"]

    def get_input(self, indices):
        """``(B, max_num_steps)`` int32 prompts of rows ``indices % len(self)``."""
        rows = (self.dataset[n] for n in bt.row_numbers(indices, len(self.dataset)))
        prompts = [self._prompt_text(row) for row in rows]
        return _prompt_array(bt.padded_prompts(prompts, self.encoding_tokenizer, self.max_num_steps))

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32 rewards, 1.0 or 0.0 per row of ``full_generations``."""
        rewards = bt.gsm8k_rewards(self.dataset, indices, np.array(full_generations), self.decoding_tokenizer)
        return jnp.array(rewards, dtype=jnp.float32)


class GSM8KTest(GSM8KTrain):
    """:class:`GSM8KTrain` on the test split."""

    hub = bt.GSM8K_TEST


class GSM8KSFT(GSM8KTrain):
    """:class:`GSM8KTrain` whose prompt is followed directly by the row's answer (for SFT)."""

    def _prompt_text(self, row):
        return row["prompt"] + row["answer"]


class ReasoningGymTrain(BanditTask):
    """A ReasoningGym dataset (needs ``reasoning-gym``), scored by the dataset's ``score_answer``
    on the decoded generation after ``</think>``. Prompt: :func:`make_rg_prompt` of the question.

    Args:
        dataset_size: how many examples ReasoningGym generates (``len(self)``).
        seed: ReasoningGym's seed.
        dataset_type: the ReasoningGym dataset name.
        **config: further ``reasoning_gym.create_dataset`` arguments (an extension: upstream's
            countdown variants build the default dataset first and then replace it).
    """

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps,
                 dataset_size=10000, seed=42, dataset_type="countdown", **config):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self.dataset_size = dataset_size
        self.dataset = bt.create_rg_dataset(dataset_type, dataset_size, seed, **config)

    def __len__(self):
        return self.dataset_size

    def get_input(self, indices):
        """``(B, max_num_steps)`` int32 prompts of examples ``indices % len(self.dataset)``."""
        questions = [self.dataset[n]["question"] for n in bt.row_numbers(indices, len(self.dataset))]
        prompts = [make_rg_prompt(q) for q in questions]
        return _prompt_array(bt.padded_prompts(prompts, self.encoding_tokenizer, self.max_num_steps))

    def get_batch_fitness(self, indices, full_generations):
        """float32 rewards for the pairs ``zip(indices, full_generations)`` (the shorter length)."""
        rewards = bt.rg_rewards(self.dataset, indices, np.array(full_generations), self.decoding_tokenizer)
        return jnp.array(rewards, dtype=jnp.float32)


class ReasoningGymTest(BanditTask):
    """Upstream's unused ReasoningGym test task: it builds the dataset (``dataset_size=1000``,
    ``seed=42``) but, being a plain :class:`BanditTask`, has no ``len``/``get_input``/fitness."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps,
                 dataset_size=1000, seed=42, dataset_type="countdown"):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self.dataset_size = dataset_size
        self.dataset = bt.create_rg_dataset(dataset_type, dataset_size, seed)


class _AIMETask(BanditTask):
    """AIME-style problems from ``hub`` or ``data_path``, scored by math-verify (needs
    ``math-verify``) on the decoded generation after ``</think>``, stripped.

    Args:
        data_path: local file of the split's rows (``problem``, ``answer``; a missing field gives
            the prompt question ``None`` and a reward of 0, as upstream); None loads the hub split.
    """

    hub: bt.HubSplit

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, data_path=None):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self.dataset = bt.task_rows(data_path, self.hub, _build_aime_prompt)

    def __len__(self):
        return len(self.dataset)

    def get_input(self, indices):
        """``(B, max_num_steps)`` int32 prompts of rows ``indices % len(self)``."""
        prompts = [self.dataset[n]["prompt"] for n in bt.row_numbers(indices, len(self.dataset))]
        return _prompt_array(bt.padded_prompts(prompts, self.encoding_tokenizer, self.max_num_steps))

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32 rewards, 1.0 or 0.0 per row of ``full_generations``."""
        rewards = bt.aime_rewards(self.dataset, indices, np.array(full_generations), self.decoding_tokenizer)
        return jnp.array(rewards, dtype=jnp.float32)


class AIMETrain(_AIMETask):
    """AIME-style training on ``agentica-org/DeepScaleR-Preview-Dataset`` (train split)."""

    hub = bt.DEEPSCALER_TRAIN


class AIMETrainAIME(_AIMETask):
    """AIME training on ``gneubig/aime-1983-2024`` (train split): the ``aime24``/``aime25`` task."""

    hub = bt.AIME_1983_2024


class AIME24Test(AIMETrain):
    """:class:`AIMETrain`'s scoring on ``HuggingFaceH4/aime_2024`` (train split)."""

    hub = bt.AIME_2024


class AIME25Test(AIMETrain):
    """:class:`AIMETrain`'s scoring on ``math-ai/aime25`` (test split)."""

    hub = bt.AIME_2025


class CountdownNTrainRG(ReasoningGymTrain):
    """ReasoningGym countdown with 3 or 4 numbers: 256 examples, seed 42."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, dataset_size=256, seed=42):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps, dataset_size=dataset_size,
                         seed=seed, dataset_type="countdown", **bt.COUNTDOWN_N)


class CountdownNValRG(ReasoningGymTrain):
    """ReasoningGym countdown with 3 or 4 numbers: 128 examples, seed 1337."""

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, dataset_size=128, seed=1337):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps, dataset_size=dataset_size,
                         seed=seed, dataset_type="countdown", **bt.COUNTDOWN_N)


def _make_rg_train_class(dataset_name: str):
    """``<Camel>TrainRG``: :class:`ReasoningGymTrain` on ``dataset_name``, 10000 examples, seed 42."""
    return bt.make_rg_class(ReasoningGymTrain, dataset_name, "TrainRG", 10000, 42)


def _make_rg_validation_class(dataset_name: str):
    """``<Camel>ValRG``: :class:`ReasoningGymTrain` on ``dataset_name``, 2000 examples, seed 1337."""
    return bt.make_rg_class(ReasoningGymTrain, dataset_name, "ValRG", 2000, 1337)


# Task name -> class, called as cls(encoding_tokenizer, decoding_tokenizer, max_num_steps).
all_tasks, validation_tasks = bt.build_registries(globals(), _make_rg_train_class, _make_rg_validation_class)
