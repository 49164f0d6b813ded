"""The framework-free half of the LLM bandit tasks (upstream's ``environments/llm_bandits.py``).

Everything here is plain Python and numpy: prompt construction, decoding with a stop token,
answer extraction and scoring (GSM8K's regex scorer, ReasoningGym's ``score_answer``, AIME's
math-verify), reading task data from local files, and the lazy imports of the optional packages.
Both ``eggroll_torch.environments.llm_bandits`` and ``jax_reference.environments.llm_bandits``
import it, so the string logic exists once; it imports neither torch nor jax.

Tokenizer protocol the tasks rely on (upstream's ``LegacyWorldTokenizer`` and ``GptTokenizer`` fit it):

- ``encode(text: str) -> list[int]``: a Python list, because prompts are padded by list
  concatenation (a numpy array would be added to elementwise instead);
- ``decode(tokens: numpy int array of shape (n,)) -> str``; it may raise on ids it cannot
  decode (unknown ids, bytes that are not UTF-8), which scores the text as empty.

Token id 0 is the stop/padding token: decoding stops at the first 0, prompts are padded with 0.

Optional packages (imported only by the tasks that need them, with an ``ImportError`` naming the
package otherwise): ``reasoning-gym`` (ReasoningGym tasks), ``math-verify`` (AIME scoring),
``datasets`` (reading a split from the Hugging Face hub when no local file is given), ``pyarrow``
(reading ``.parquet`` task files).
"""

import importlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, NamedTuple

import numpy as np

__all__ = [
    "RG_DATASETS", "HubSplit", "require", "safe_decode", "get_padded_prompt", "strip_thoughts", "make_rg_prompt",
    "make_conversation", "extract_predicted_answer", "extract_ground_truth", "check_accuracy", "single_fitness",
    "read_records", "task_rows", "row_numbers", "padded_prompts", "digit_counts", "gsm8k_rewards",
    "create_rg_dataset", "rg_rewards", "aime_rewards", "make_rg_class", "build_registries",
]

# The ReasoningGym dataset names upstream registers as tasks, in upstream's order (the order of
# the task registries follows it).
RG_DATASETS = tuple(
    "ab acre advanced_geometry aiw arc_1d arc_agi base_conversion basic_arithmetic bf binary_alternation "
    "binary_matrix bitwise_arithmetic boxnet caesar_cipher calendar_arithmetic chain_sum circuit_logic codeio "
    "coin_flip color_cube_rotation complex_arithmetic composite count_bits count_primes countdown "
    "course_schedule cryptarithm decimal_arithmetic decimal_chain_sum dice emoji_mystery family_relationships "
    "figlet_font fraction_simplification futoshiki game_of_life game_of_life_halting gcd graph_color "
    "group_anagrams gsm_symbolic intermediate_integration isomorphic_strings jugs kakurasu knight_swap "
    "knights_knaves largest_island lcm leg_counting letter_counting letter_jumble list_functions "
    "mahjong_puzzle manipulate_matrix maze mini_sudoku modulo_grid n_queens needle_haystack number_filtering "
    "number_format number_sequence number_sorting palindrome_generation palindrome_partitioning "
    "polynomial_equations polynomial_multiplication pool_matrix power_function prime_factorization products "
    "propositional_logic puzzle24 quantum_lock ransom_note rearc rectangle_count rotate_matrix rotten_oranges "
    "rubiks_cube rush_hour self_reference sentence_reordering shortest_path simple_equations simple_geometry "
    "simple_integration sokoban spell_backward spiral_matrix string_insertion string_manipulation "
    "string_splitting string_synthesis sudoku survo syllogism time_intervals tower_of_hanoi tsumego "
    "word_ladder word_sequence_reversal word_sorting zebra_puzzles".split()
)

# pip names of the optional modules, for the error message of `require`.
_PIP_NAMES = {"reasoning_gym": "reasoning-gym", "math_verify": "math-verify", "datasets": "datasets",
              "pyarrow": "pyarrow"}

THINK_END = "</think>"


def require(module: str, purpose: str, alternative: str = ""):
    """Import the optional ``module`` or raise ``ImportError`` saying which package ``purpose``
    needs (and, if given, the ``alternative`` to installing it)."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.partition(".")[0]
        pip_name = _PIP_NAMES.get(top, top)
        hint = f" ({alternative})" if alternative else ""
        raise ImportError(f"{purpose} needs the '{pip_name}' package: pip install {pip_name}{hint}") from err


# ----------------------------------------------------------------------------------------------
# Text helpers
# ----------------------------------------------------------------------------------------------
def safe_decode(tokens, tokenizer):
    """``tokenizer.decode`` of ``tokens`` (1-D) cut before the first 0, or ``""`` if decoding fails.

    A Python list is never cut (``list == 0`` is just False), as upstream. Any ``Exception`` from
    indexing or decoding gives ``""``; upstream also swallows ``KeyboardInterrupt``/``SystemExit``,
    which here propagate.
    """
    try:
        stops = np.flatnonzero(tokens == 0)
        if stops.size > 0:
            tokens = tokens[:stops[0]]
        return tokenizer.decode(tokens)
    except Exception:
        return ""


def get_padded_prompt(single_prompt, generation_length):
    """The token list ``single_prompt`` cut to ``generation_length`` and right-padded with 0s to it."""
    kept = single_prompt[:generation_length]
    return kept + [0] * (generation_length - len(kept))


def strip_thoughts(txt: str) -> str:
    """The text after the first ``</think>``, or all of ``txt`` when there is none."""
    head, found, tail = txt.partition(THINK_END)
    return tail if found else head


def make_rg_prompt(question: str) -> str:
    """The prompt of a ReasoningGym question (upstream's wording, which the token ids depend on)."""
    return ("User: You are a helpful assistant. You first think about the reasoning process in your mind and "
            f"then provide the user with the answer. Question: {question}. Assistant: <think")


def make_conversation(example):
    """``{"prompt": ...}`` for a GSM8K row ``{"question", ...}`` (upstream's dataset ``map``)."""
    return {"prompt": f"User: {example['question']}\n\nAssistant: <think"}


def _build_aime_prompt(example):
    """The row with a ``"prompt"`` added; a row without ``"problem"`` gets the question ``None``."""
    problem = example.get("problem")
    prompt = ("User: You are a helpful assistant. You first think about the reasoning process in your mind and "
              "then provide the user with the answer. Most answers are simple numbers, fractions or expressions. "
              f"Question: {problem}\nAssistant: <think")
    return {**example, "prompt": prompt}


def _get_aime_answer(example):
    """The gold answer of an AIME-style row (``None`` when it has no ``"answer"``)."""
    return example.get("answer")


def _to_camel(s: str) -> str:
    """``"arc_1d"`` -> ``"Arc1d"``: each ``_``-separated part capitalized (rest lower-cased), joined."""
    return "".join(part.capitalize() for part in s.split("_"))


# ----------------------------------------------------------------------------------------------
# GSM8K scoring
# ----------------------------------------------------------------------------------------------
# A number candidate: 2+ characters of digits, '$', '.' and ',' (optionally after '-'), else an
# integer. Because the first alternative wins wherever both match, "5." or "$5" is one candidate.
_NUMBER = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def extract_predicted_answer(text):
    """The last number candidate in ``text`` without ``,`` and ``$`` and without one trailing ``.``,
    or ``None`` when ``text`` has no digit, ``$``, ``.`` or ``,`` run to match.

    The result is a string and may be empty or not a number at all (``"$."`` gives ``""``,
    ``"..."`` gives ``".."``). Upstream also strips everything up to a ``"#### "``, which cannot
    occur inside a candidate, so that step is left out.
    """
    candidates = _NUMBER.findall(text)
    if not candidates:
        return None
    long_form, short_form = candidates[-1]
    answer = (long_form or short_form).replace(",", "").replace("$", "")
    return answer[:-1] if answer.endswith(".") else answer


def extract_ground_truth(text):
    """A GSM8K answer's final number: the last piece of ``text`` split at ``####``, stripped (all of
    ``text`` if there is none). Splitting scans left to right, so ``"1#####2"`` gives ``"#2"``."""
    return text.split("####")[-1].strip()


def check_accuracy(generated_ans, solution):
    """1.0 if the predicted answer of ``generated_ans`` equals ``solution``'s ground truth AS
    STRINGS, else 0.0 (``"0.50"`` is not ``"0.5"``; a gold answer with a comma never matches)."""
    predicted = extract_predicted_answer(generated_ans.strip())
    return 1.0 if predicted == extract_ground_truth(solution) else 0.0


def single_fitness(generated_answer, true_answer, i):
    """:func:`check_accuracy` of the text after the FIRST ``</think>``; 0.0 without one. ``i`` is unused."""
    _, found, answer = generated_answer.partition(THINK_END)
    return check_accuracy(answer, true_answer) if found else 0.0


# ----------------------------------------------------------------------------------------------
# AIME scoring (math-verify)
# ----------------------------------------------------------------------------------------------
def _math_verify():
    return require("math_verify", "AIME scoring")


@lru_cache(maxsize=2048)
def _parse_gold_cached(gold_text: str):
    """math-verify's parse of a gold answer, cached (gold answers repeat across a population)."""
    return _math_verify().parse(gold_text)


def _score_with_math_verify(pred_text, gold_text):
    """1.0 if math-verify finds ``pred_text`` equivalent to ``gold_text``, else 0.0; an empty
    prediction or any error while parsing or verifying scores 0.0."""
    if not pred_text:
        return 0.0
    math_verify = _math_verify()  # a missing package is an error, not a score of 0
    try:
        gold = _parse_gold_cached(gold_text)
        return 1.0 if math_verify.verify(gold, math_verify.parse(pred_text)) else 0.0
    except Exception:
        return 0.0


# ----------------------------------------------------------------------------------------------
# Task data
# ----------------------------------------------------------------------------------------------
class HubSplit(NamedTuple):
    """Where upstream loads a task's data: ``datasets.load_dataset(path, name, split=split)``."""

    path: str
    name: str | None
    split: str


GSM8K_TRAIN = HubSplit("openai/gsm8k", "main", "train")
GSM8K_TEST = HubSplit("openai/gsm8k", "main", "test")
DEEPSCALER_TRAIN = HubSplit("agentica-org/DeepScaleR-Preview-Dataset", None, "train")
AIME_1983_2024 = HubSplit("gneubig/aime-1983-2024", None, "train")
AIME_2024 = HubSplit("HuggingFaceH4/aime_2024", None, "train")
AIME_2025 = HubSplit("math-ai/aime25", None, "test")


def read_records(path: str | os.PathLike) -> list[dict]:
    """The rows of a local task file as dicts, in file order.

    ``.jsonl``: one JSON object per non-blank line; ``.json``: a list of objects; ``.parquet``
    (the hub's own files; needs ``pyarrow``): its rows. Raises ``ValueError`` for another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    if suffix == ".json":
        return list(json.loads(path.read_text(encoding="utf-8")))
    if suffix == ".parquet":
        return require("pyarrow.parquet", f"reading {path.name}").read_table(path).to_pylist()
    raise ValueError(f"{path}: task data must be a .jsonl, .json or .parquet file")


def _hub_records(hub: HubSplit) -> list[dict]:
    datasets = require("datasets", f"loading {hub.path} from the hub", "or pass data_path=<local file>")
    return [dict(row) for row in datasets.load_dataset(hub.path, hub.name, split=hub.split)]


def task_rows(data_path, hub: HubSplit, with_prompt: Callable[[dict], dict], fields: tuple[str, ...] = ()):
    """A task's rows with their prompts: each row of ``data_path`` (or, when it is None, of
    ``hub`` through the ``datasets`` package) merged with ``with_prompt(row)``.

    ``fields``: keys every row must have; a row without one raises ``ValueError`` naming the source.
    """
    rows = _hub_records(hub) if data_path is None else read_records(data_path)
    source = hub.path if data_path is None else str(data_path)
    for n, row in enumerate(rows):
        missing = [f for f in fields if f not in row]
        if missing:
            raise ValueError(f"{source}: row {n} has no {missing} (a {hub.path} row needs {list(fields)})")
    return [{**row, **with_prompt(row)} for row in rows]


def row_numbers(indices, size: int) -> list[int]:
    """Dataset rows of ``indices`` (any iterable of integer scalars or 0-d arrays): ``i % size``,
    Python's modulo, so negative indices count from the end."""
    return [np.asarray(i).item() % size for i in indices]


def padded_prompts(prompts: list[str], tokenizer, generation_length: int) -> list[list[int]]:
    """Each prompt encoded, cut and 0-padded to ``generation_length`` (rows of a (B, T) array)."""
    return [get_padded_prompt(tokenizer.encode(p), generation_length) for p in prompts]


def digit_counts(generations: np.ndarray, tokenizer) -> list[int]:
    """Per row of ``generations`` (B, T): how many characters of the decoded ``row[1:]`` are digits
    (``str.isdigit``, so ``"²"`` and ``"①"`` count too)."""
    return [sum(c.isdigit() for c in safe_decode(row[1:], tokenizer)) for row in generations]


def gsm8k_rewards(rows: list[dict], indices, generations: np.ndarray, tokenizer) -> list[float]:
    """GSM8K reward per generation row: :func:`single_fitness` of the decoded row (prompt included)
    against the answer of ``indices[j]``'s row; an empty decode scores 0.0 (without looking the
    answer up: only a non-empty row beyond ``len(indices)`` raises ``IndexError``)."""
    answers = [rows[n]["answer"] for n in row_numbers(indices, len(rows))]
    rewards = []
    for j, tokens in enumerate(generations):
        text = safe_decode(tokens, tokenizer)
        rewards.append(single_fitness(text, answers[j], j) if text else 0.0)
    return rewards


def aime_rewards(rows: list[dict], indices, generations: np.ndarray, tokenizer) -> list[float]:
    """AIME reward per generation row: math-verify of the decoded row after ``</think>``, stripped,
    against ``indices[j]``'s gold answer. Rows beyond ``len(indices)`` raise ``IndexError``."""
    golds = [_get_aime_answer(rows[n]) for n in row_numbers(indices, len(rows))]
    return [_score_with_math_verify(strip_thoughts(safe_decode(tokens, tokenizer)).strip(), golds[j])
            for j, tokens in enumerate(generations)]


# ----------------------------------------------------------------------------------------------
# ReasoningGym
# ----------------------------------------------------------------------------------------------
# The "countdownn" tasks' ReasoningGym configuration.
COUNTDOWN_N = MappingProxyType({"min_numbers": 3, "max_numbers": 4})


def create_rg_dataset(dataset_type: str, size: int, seed: int, **config):
    """``reasoning_gym.create_dataset(dataset_type, size=size, seed=seed, **config)``."""
    reasoning_gym = require("reasoning_gym", f"the ReasoningGym task {dataset_type!r}")
    return reasoning_gym.create_dataset(dataset_type, size=size, seed=seed, **config)


def rg_rewards(dataset, indices, generations: np.ndarray, tokenizer) -> list[float]:
    """ReasoningGym reward per (index, generation row) pair, over the shorter of the two: the
    dataset's ``score_answer`` of the decoded row after ``</think>``, stripped; empty scores 0.0."""
    rewards = []
    for n, tokens in zip(row_numbers(indices, len(dataset)), generations):
        answer = strip_thoughts(safe_decode(tokens, tokenizer)).strip()
        rewards.append(dataset.score_answer(answer=answer, entry=dataset[n]) if answer else 0.0)
    return rewards


def make_rg_class(base: type, dataset_name: str, suffix: str, dataset_size: int, seed: int) -> type:
    """A subclass ``<CamelName><suffix>`` of ``base`` (a ``ReasoningGymTrain``) fixed to one dataset,
    whose constructor is ``(encoding_tokenizer, decoding_tokenizer, max_num_steps,
    dataset_size=<dataset_size>, seed=<seed>)``."""
    def __init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps, dataset_size=dataset_size, seed=seed):
        base.__init__(self, encoding_tokenizer, decoding_tokenizer, max_num_steps,
                      dataset_size=dataset_size, seed=seed, dataset_type=dataset_name)

    name = f"{_to_camel(dataset_name)}{suffix}"
    attrs: dict[str, Any] = {"__init__": __init__, "__module__": base.__module__, "__qualname__": name,
                             "__doc__": f"ReasoningGym's {dataset_name!r} dataset as a bandit task."}
    return type(name, (base,), attrs)


# ----------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------
# (task name, training class, validation class), before the ReasoningGym datasets.
_NAMED_TASKS = (
    ("fastzero", "FastZero", "FastZero"), ("uniquetok", "UniqueTok", "UniqueTok"), ("reptok", "RepTok", "RepTok"),
    ("digits", "Digits", "Digits"), ("gsm8k", "GSM8KTrain", "GSM8KTest"), ("gsm8ksft", "GSM8KSFT", "GSM8KTest"),
    ("countdownn", "CountdownNTrainRG", "CountdownNValRG"), ("aime24", "AIMETrainAIME", "AIME24Test"),
    ("aime25", "AIMETrainAIME", "AIME25Test"),
)


def build_registries(classes, make_train: Callable[[str], type], make_validation: Callable[[str], type]):
    """``(all_tasks, validation_tasks)``: task name -> class, the named tasks looked up by class
    name in ``classes`` (a module's namespace), then one ``make_train(name)`` /
    ``make_validation(name)`` class per :data:`RG_DATASETS` entry, in upstream's order."""
    train = {task: classes[cls] for task, cls, _ in _NAMED_TASKS}
    validation = {task: classes[cls] for task, _, cls in _NAMED_TASKS}
    train.update({name: make_train(name) for name in RG_DATASETS})
    validation.update({name: make_validation(name) for name in RG_DATASETS})
    return train, validation
