"""jax_reference.environments.llm_bandits against upstream's environments/llm_bandits.py.

Same names and signatures; the same registries and class hierarchy; identical outputs of every
text function on a corpus of thousands of strings; bit-identical prompts and rewards of the toy
tasks, ``Digits`` and the GSM8K tasks for the same token arrays (random and crafted rows).

Upstream imports ``reasoning_gym``, ``datasets`` and ``math_verify`` at module top. Whichever of
them is not installed is replaced in ``sys.modules`` by a stand-in module for the import only
(its functions raise if called); the ReasoningGym and math-verify comparisons then skip. With
the packages installed (``pip install reasoning-gym math-verify datasets``) they run on the real
libraries. Upstream's GSM8K/AIME classes load from the hub: their ``load_dataset`` is replaced by
one that serves our own small task files (``tests/data``), which our side reads by ``data_path``.
The tokenizer is the stand-in ``PieceTokenizer`` of ``tests/environments/bandit_support.py``,
the same object for both sides.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import string
import sys
import types
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from _same_api import assert_same_api
from _upstream_bandits import import_upstream_bandits
from conformance.tolerances import assert_tree_parity

import jax_reference.environments.llm_bandits as ours

pytestmark = [pytest.mark.upstream]


def _load_support():
    """``tests/environments/bandit_support.py`` (a sibling test directory, not on ``sys.path``)."""
    if "bandit_support" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "environments" / "bandit_support.py"
        spec = importlib.util.spec_from_file_location("bandit_support", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["bandit_support"] = module
    return sys.modules["bandit_support"]


support = _load_support()
TOK = support.PieceTokenizer()
# The optional packages that upstream imported as stand-ins in this session.
STAND_INS: set[str] = set()
# Module globals upstream's registry loop leaves behind (the last classes it built).
LOOP_LEFTOVERS = ("TrainClass", "ValClass", "_name")


@pytest.fixture(scope="module")
def up(hs):
    """Upstream's llm_bandits module, with stand-ins for the optional packages that are missing."""
    module, missing = import_upstream_bandits()
    STAND_INS.update(missing)
    return module


def needs_real(package):
    if package in STAND_INS:
        pytest.skip(f"{package} is not installed: upstream imported a stand-in")


class Rows:
    """The part of a ``datasets.Dataset`` upstream uses: ``map``, ``len`` and integer indexing."""

    def __init__(self, rows):
        self.rows = list(rows)

    def map(self, fn):
        return Rows({**row, **fn(row)} for row in self.rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, n):
        return self.rows[n]


@pytest.fixture
def serve_tiny_files(up, monkeypatch):
    """Upstream's ``load_dataset`` serving ``tests/data``: GSM8K rows for openai/gsm8k, AIME rows else."""
    def load_dataset(path, *args, **kwargs):
        return Rows(ours_rows(support.GSM8K_TINY if path == "openai/gsm8k" else support.AIME_TINY))

    monkeypatch.setattr(up, "load_dataset", load_dataset)


def ours_rows(path):
    from eggroll_torch.environments.bandit_text import read_records
    return read_records(path)


def same(ledger, got, expected, what):
    ledger.record(assert_tree_parity(got, expected, "bits", what=what))
    ledger.cases += 1


# ----------------------------------------------------------------------------------------------
# Names, signatures, registries
# ----------------------------------------------------------------------------------------------
def test_same_names_and_signatures(up, ledger):
    view = types.ModuleType(up.__name__)
    view.__dict__.update({k: v for k, v in vars(up).items() if k not in LOOP_LEFTOVERS})
    assert assert_same_api(view, ours) >= 30
    ledger.cases += 1


def _public_mro(cls):
    return [c.__name__ for c in cls.__mro__ if not c.__name__.startswith("_")]


def _init_params(cls):
    return list(inspect.signature(cls.__init__).parameters.values())


def test_constructors_take_upstreams_arguments_first(up):
    """Upstream's constructor parameters (names, defaults) are a prefix of ours; we add only
    ``data_path`` (hub-backed tasks) and ``**config`` (ReasoningGymTrain)."""
    for name, theirs in vars(up).items():
        if isinstance(theirs, type) and theirs.__module__ == up.__name__ and name not in LOOP_LEFTOVERS:
            mine = getattr(ours, name)
            assert _public_mro(mine) == _public_mro(theirs), name
            theirs_p, mine_p = _init_params(theirs), _init_params(mine)
            assert mine_p[:len(theirs_p)] == theirs_p, name
            assert [p.name for p in mine_p[len(theirs_p):]] in ([], ["data_path"], ["config"]), name


def test_same_registries(up):
    assert list(ours.RG_DATASETS) == up.RG_DATASETS
    for theirs, mine in ((up.all_tasks, ours.all_tasks), (up.validation_tasks, ours.validation_tasks)):
        assert list(mine) == list(theirs)
        assert [c.__name__ for c in mine.values()] == [c.__name__ for c in theirs.values()]
        for key, cls in theirs.items():
            assert _public_mro(mine[key]) == _public_mro(cls), key
            if key in up.RG_DATASETS:  # upstream's builder adds a private `_ds` parameter
                assert _init_params(mine[key]) == [p for p in _init_params(cls) if p.name != "_ds"], key


# ----------------------------------------------------------------------------------------------
# Text functions on a corpus
# ----------------------------------------------------------------------------------------------
PIECES = (list(string.digits) * 3 + ["$", ",", ".", "-", " ", "#", "####", "#####", "</think>", "<think>", "a", "Z",
                                      "\n", "\t", "\u00a0", "²", "٣", "½", "1,000", "3.5", "-0", "$1,2.3."])


def corpus(seed=0, n=4000):
    rng = np.random.default_rng(seed)
    fixed = ["", " ", "42", "The answer is 42.", "#### 7", "a</think>b</think>c", "1#####2", "$.", "...", "-", "--5",
             "٣٣", "x ²", "1,000,000.00", " 12 \n", "\u00a05\u00a0", "</think>", "</think></think>9"]
    random = ["".join(rng.choice(PIECES, rng.integers(0, 25))) for _ in range(n)]
    return fixed + random


TEXTS = corpus()
GOLDS = corpus(seed=1, n=300)


def test_answer_extraction_is_identical(up, ledger):
    for text in TEXTS:
        assert ours.extract_predicted_answer(text) == up.extract_predicted_answer(text), repr(text)
        assert ours.extract_ground_truth(text) == up.extract_ground_truth(text), repr(text)
        assert ours.strip_thoughts(text) == up.strip_thoughts(text), repr(text)
    ledger.cases += 1


def test_scoring_is_identical(up, ledger):
    rng = np.random.default_rng(2)
    hits = 0
    for i, text in enumerate(TEXTS):
        # a gold that matches the text's own answer about half of the time
        answer = up.extract_predicted_answer(text)
        gold = f"steps #### {answer}" if answer is not None and rng.random() < 0.5 else GOLDS[i % len(GOLDS)]
        expected = up.single_fitness(text, gold, i)
        assert ours.single_fitness(text, gold, i) == expected, (text, gold)
        assert ours.check_accuracy(text, gold) == up.check_accuracy(text, gold), (text, gold)
        hits += expected
    assert hits > 100
    ledger.cases += 1


def test_prompt_builders_are_identical(up, ledger):
    for text in TEXTS[:500]:
        assert ours.make_conversation({"question": text}) == up.make_conversation({"question": text})
        assert ours.make_rg_prompt(text) == up.make_rg_prompt(text)
        row = {"problem": text, "answer": text[::-1], "extra": 1}
        assert ours._build_aime_prompt(row) == up._build_aime_prompt(row)
        assert ours._get_aime_answer(row) == up._get_aime_answer(row)
    assert ours._build_aime_prompt({"Question": "q"}) == up._build_aime_prompt({"Question": "q"})
    assert ours._get_aime_answer({}) is up._get_aime_answer({}) is None
    for name in list(up.RG_DATASETS) + ["", "_a__b_", "ARC_agi", "x1_2y"]:
        assert ours._to_camel(name) == up._to_camel(name)
    ledger.cases += 1


def test_padding_and_decoding_are_identical(up, ledger):
    rng = np.random.default_rng(3)
    for _ in range(500):
        prompt = rng.integers(1, 300, rng.integers(0, 12)).tolist()
        length = int(rng.integers(0, 15))
        assert ours.get_padded_prompt(prompt, length) == up.get_padded_prompt(prompt, length)
    rows = support.random_generations(rng, TOK, 400, 20)
    rows[:3] = 0
    for row in rows:
        assert ours.safe_decode(row, TOK) == up.safe_decode(row, TOK)
        assert ours.safe_decode(row.tolist(), TOK) == up.safe_decode(row.tolist(), TOK)
        assert ours.safe_decode(jnp.asarray(row), TOK) == up.safe_decode(jnp.asarray(row), TOK)
    ledger.cases += 1


# ----------------------------------------------------------------------------------------------
# Tasks
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["FastZero", "UniqueTok", "RepTok", "Digits"])
@pytest.mark.parametrize("length", [1, 2, 3, 9, 40])
def test_toy_tasks_are_identical(up, ledger, name, length):
    theirs, mine = getattr(up, name)(TOK, TOK, length), getattr(ours, name)(TOK, TOK, length)
    rng = np.random.default_rng(length)
    for shape in [(4,), (2, 3), (0,)]:
        idx = jnp.zeros(shape, dtype=jnp.int32)
        same(ledger, mine.get_input(idx), theirs.get_input(idx), f"{name}.get_input {shape}")
    batches = [np.zeros((5, length), np.int32), np.ones((5, length), np.int32), np.zeros((0, length), np.int32),
               rng.integers(0, 3, (64, length)).astype(np.int32), rng.integers(-5, 2**31 - 1, (16, length)),
               support.random_generations(rng, TOK, 64, length).astype(np.uint16)]
    for g in batches:
        try:
            expected = theirs.get_batch_fitness(None, jnp.asarray(g))
        except ValueError:  # RepTok over no generated token
            with pytest.raises(ValueError):
                mine.get_batch_fitness(None, jnp.asarray(g))
            continue
        same(ledger, mine.get_batch_fitness(None, jnp.asarray(g)), expected, f"{name} T={length}")


@pytest.mark.usefixtures("serve_tiny_files")
@pytest.mark.parametrize("name", ["GSM8KTrain", "GSM8KTest", "GSM8KSFT"])
def test_gsm8k_tasks_are_identical(up, ledger, name):
    steps = 200
    theirs = getattr(up, name)(TOK, TOK, steps)
    mine = getattr(ours, name)(TOK, TOK, steps, data_path=support.GSM8K_TINY)
    assert len(mine) == len(theirs) == 6
    rng = np.random.default_rng(4)
    for idx in (jnp.arange(6), jnp.array([7, -1, 100, 3, 3]), jnp.zeros((0,), jnp.int32)):
        same(ledger, mine.get_input(idx), theirs.get_input(idx), f"{name}.get_input")
    total = 0.0
    for trial in range(30):
        idx = jnp.asarray(rng.integers(-6, 12, 12))
        prompts = np.asarray(theirs.get_input(idx))
        if trial % 3 == 0:  # the right answer after </think>, often enough to score 1.0
            golds = [theirs.dataset[int(i) % 6]["answer"].split("####")[-1].strip() for i in np.asarray(idx)]
            tails = [TOK.encode(f"></think> so {g}{rng.choice(['', '.', ' '])}") for g in golds]
        else:
            tails = [None] * len(prompts)
        rows = []
        for prompt, tail in zip(prompts, tails):
            kept = [t for t in prompt.tolist() if t]
            rows.append((kept + tail + [0] * steps)[:steps] if tail else
                        support.random_generations(rng, TOK, 1, steps, kept)[0].tolist())
        g = jnp.asarray(np.array(rows, dtype=np.int32))
        expected = theirs.get_batch_fitness(idx, g)
        same(ledger, mine.get_batch_fitness(idx, g), expected, f"{name}.get_batch_fitness")
        total += float(expected.sum())
    if name != "GSM8KSFT":  # SFT prompts (question and answer) fill all steps: nothing is generated
        assert total >= 10 * 12


# ----------------------------------------------------------------------------------------------
# ReasoningGym and AIME (real packages only)
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task, size", [("countdownn", 6), ("basic_arithmetic", 6), ("chain_sum", 5),
                                        ("leg_counting", 4)])
def test_reasoning_gym_tasks_are_identical(up, ledger, task, size):
    needs_real("reasoning_gym")
    steps = 700
    for registry, mine_registry in ((up.all_tasks, ours.all_tasks), (up.validation_tasks, ours.validation_tasks)):
        theirs = registry[task](TOK, TOK, steps, dataset_size=size)
        mine = mine_registry[task](TOK, TOK, steps, dataset_size=size)
        assert len(mine) == len(theirs) == size
        assert [mine.dataset[n] for n in range(size)] == [theirs.dataset[n] for n in range(size)]
        idx = jnp.arange(-2, size + 2)
        same(ledger, mine.get_input(idx), theirs.get_input(idx), f"{task}.get_input")
        answers = [theirs.dataset[int(i) % size]["answer"] for i in np.asarray(idx)]
        texts = [f"></think> {a} " if n % 3 else f"></think>{a}x" for n, a in enumerate(answers)] + ["</think> 1"]
        g = jnp.asarray(np.array([(TOK.encode(t) + [0] * steps)[:steps] for t in texts], dtype=np.int32))
        expected = theirs.get_batch_fitness(idx, g)  # one row more than indices: zip drops it
        same(ledger, mine.get_batch_fitness(idx, g), expected, f"{task}.get_batch_fitness")
        assert float(expected.sum()) >= 1.0


MATH_PAIRS = [("2", "2"), ("\\frac{3}{4}", "0.75"), ("$\\sqrt{2}$", "\\sqrt{2}"), ("1/2", "\\frac{1}{2}"),
              ("x", "2"), ("", "2"), ("\\frac{", "2"), ("720 degrees", "720"), ("3", None), ("\\boxed{5}", "5"),
              ("2, 3", "\\{2, 3\\}"), ("0.333", "\\frac{1}{3}")]


def test_math_verify_scoring_is_identical(up, ledger):
    needs_real("math_verify")
    for pred, gold in MATH_PAIRS:
        assert ours._score_with_math_verify(pred, gold) == up._score_with_math_verify(pred, gold), (pred, gold)
    assert ours._score_with_math_verify("2", "2") == 1.0
    ledger.cases += 1


@pytest.mark.usefixtures("serve_tiny_files")
@pytest.mark.parametrize("name", ["AIMETrain", "AIMETrainAIME", "AIME24Test", "AIME25Test"])
def test_aime_tasks_are_identical(up, ledger, name):
    needs_real("math_verify")
    theirs, mine = getattr(up, name)(TOK, TOK, 150), getattr(ours, name)(TOK, TOK, 150, data_path=support.AIME_TINY)
    assert len(mine) == len(theirs) == 4
    idx = jnp.array([0, 1, 2, 3, 5, -1])
    same(ledger, mine.get_input(idx), theirs.get_input(idx), f"{name}.get_input")
    texts = ["></think> 2", "></think>720", "></think>$0.75$", "no tag \\sqrt{2}", "</think>", "</think>\\frac{1}{2}"]
    g = jnp.asarray(np.array([(TOK.encode(t) + [0] * 40)[:40] for t in texts], dtype=np.int32))
    expected = theirs.get_batch_fitness(idx, g)
    same(ledger, mine.get_batch_fitness(idx, g), expected, f"{name}.get_batch_fitness")
    assert float(expected.sum()) >= 2.0
