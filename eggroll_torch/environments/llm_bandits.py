"""LLM bandit tasks with torch tensors (upstream's ``hyperscalees.environments.llm_bandits``).

Name for name the mirror of ``jax_reference.environments.llm_bandits``; the same prompts and the
same rewards for the same token arrays, as torch tensors:

- ``get_input(indices)``: ``(B, max_num_steps)`` ``torch.int32`` prompts, 0-padded;
- ``get_batch_fitness(indices, full_generations)``: ``(B,)`` ``torch.float32`` rewards of the
  ``(B, T)`` generated token rows (a tensor or anything ``numpy.asarray`` takes).

Toy tasks compute their scores with torch ops, identical to JAX's ``jnp.nonzero`` /
``jnp.unique_counts`` formulas for integer tokens (JAX's default 32-bit mode is mirrored: 64-bit
tokens wrap to 32 bits first; float tokens are refused). The text tasks share
:mod:`.bandit_text` with the JAX side (see its docstring for the tokenizer protocol). No task
draws random numbers, so nothing here needs :mod:`eggroll_torch.random`.

Hub-backed tasks read ``data_path`` (``.jsonl``/``.json``/``.parquet``), or the hub split through
the optional ``datasets`` package when it is None; bind the path for registry use:
``functools.partial(all_tasks["gsm8k"], data_path="gsm8k_train.jsonl")``.
"""

import numpy as np
import torch

from . import bandit_text as bt
from .bandit_text import (  # noqa: F401  (upstream's module-level names)
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


def _to_numpy(x) -> np.ndarray:
    """A numpy copy of a tensor or array-like, dtype kept (what the text scorers decode)."""
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.array(x)


def _zero_prompts(indices, max_num_steps):
    # Toy tasks have an empty prompt: the generator samples every position.
    return torch.zeros(tuple(np.shape(indices)) + (max_num_steps,), dtype=torch.int32)


# ----------------------------------------------------------------------------------------------
# Toy tasks: rewards of the sampled tokens alone (the first token, the prompt's 0, is dropped)
# ----------------------------------------------------------------------------------------------
# JAX (without x64) stores 64-bit integers in 32 bits, wrapping; the scores compare values, so
# the same wrap is applied before counting.
_WRAP_64 = {torch.int64: torch.int32, torch.uint64: torch.uint32}


def _token_rows(full_generations) -> torch.Tensor:
    """``full_generations[:, 1:]`` as int64 values, after JAX's 64 -> 32-bit wrap."""
    tokens = full_generations if isinstance(full_generations, torch.Tensor) else torch.as_tensor(
        np.asarray(full_generations))
    if tokens.is_floating_point() or tokens.is_complex():
        raise TypeError(f"token arrays must be integer, got {tokens.dtype}")
    tokens = tokens[:, 1:]
    return tokens.to(_WRAP_64.get(tokens.dtype, tokens.dtype)).to(torch.int64)


def _minus_first_zero(tokens: torch.Tensor) -> torch.Tensor:
    """Per row of ``tokens`` (B, n): ``-(position of the first 0)``, or ``-2 n`` without one
    (``-0.0`` for a leading 0, or for n = 0, as JAX's ``-(0.0)``)."""
    n = tokens.shape[1]
    leading_nonzero = (tokens != 0).to(torch.int64).cumprod(dim=1).sum(dim=1)
    first = torch.where(leading_nonzero == n, 2 * n, leading_nonzero)
    return -first.to(torch.float32)


def _sorted_runs(tokens: torch.Tensor) -> torch.Tensor:
    """(B, n) bool: True where a row of the sorted tokens starts a new value."""
    ordered = tokens.sort(dim=1).values
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return starts


def _distinct_count(tokens: torch.Tensor) -> torch.Tensor:
    """Per row: how many distinct values it holds (0 for n = 0), float32."""
    return _sorted_runs(tokens).sum(dim=1).to(torch.float32)


def _largest_count(tokens: torch.Tensor) -> torch.Tensor:
    """Per row: how often its most frequent value occurs, float32; n = 0 raises ``ValueError``
    (JAX's ``max`` of an empty array does)."""
    if tokens.shape[1] == 0:
        raise ValueError("RepTok needs at least one generated token (max_num_steps >= 2)")
    run_id = _sorted_runs(tokens).to(torch.int64).cumsum(dim=1) - 1
    run_lengths = torch.zeros_like(run_id).scatter_add_(1, run_id, torch.ones_like(run_id))
    return run_lengths.max(dim=1).values.to(torch.float32)


class ToyTask(BanditTask):
    """A task with all-zero prompts scored by ``batch_fitness(tokens (B, T-1) int64) -> (B,)
    float32``. ``len()`` raises ``ValueError``: ``__len__`` is -1.

    Upstream's fourth argument is a per-row JAX function that it vmaps; here it is batched.
    """

    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, single_fitness):
        super().__init__(encoding_tokenizer, decoding_tokenizer, max_num_steps)
        self._batch_fitness = single_fitness

    def __len__(self):
        return -1

    def get_input(self, indices):
        """All-zero int32 prompts of shape ``indices.shape + (max_num_steps,)``."""
        return _zero_prompts(indices, self.max_num_steps)

    def get_batch_fitness(self, indices, full_generations):
        """``(B,)`` float32: the task's score of each row of ``full_generations[:, 1:]``."""
        return self._batch_fitness(_token_rows(full_generations))


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
        counts = bt.digit_counts(_to_numpy(full_generations), self.decoding_tokenizer)
        return torch.tensor(counts, dtype=torch.float32)


# ----------------------------------------------------------------------------------------------
# Tasks over a dataset of rows
# ----------------------------------------------------------------------------------------------
def _prompt_array(rows):
    """``(B, T)`` int32 prompts; no rows give a float32 tensor of shape (0,), as the JAX side's
    ``jnp.array([])``."""
    return torch.tensor(rows, dtype=torch.int32) if rows else torch.zeros((0,), dtype=torch.float32)


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
        rewards = bt.gsm8k_rewards(self.dataset, indices, _to_numpy(full_generations), self.decoding_tokenizer)
        return torch.tensor(rewards, dtype=torch.float32)


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
        rewards = bt.rg_rewards(self.dataset, indices, _to_numpy(full_generations), self.decoding_tokenizer)
        return torch.tensor(rewards, dtype=torch.float32)


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
        rewards = bt.aime_rewards(self.dataset, indices, _to_numpy(full_generations), self.decoding_tokenizer)
        return torch.tensor(rewards, dtype=torch.float32)


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
