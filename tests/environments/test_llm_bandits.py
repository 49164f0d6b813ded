"""eggroll_torch.environments.llm_bandits against jax_reference.environments.llm_bandits.

Both sides get the same prompts indices and the same generated token arrays (random rows from a
stand-in tokenizer's vocabulary, with stop tokens, undecodable bytes and unknown ids mixed in, plus
edge cases) and must give the same prompts and bit-identical float32 rewards. The text scoring
itself is one shared module (``bandit_text``); its semantics are pinned here by examples and held
to upstream by ``tests/upstream/test_llm_bandits_identity.py``. ReasoningGym and math-verify are
replaced by small stand-in modules, so these tests need neither package.
"""
from __future__ import annotations

import json
import subprocess
import sys
import types

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import eggroll_torch.environments.llm_bandits as T
import jax_reference.environments.llm_bandits as J
from bandit_support import AIME_TINY, GSM8K_TINY, PieceTokenizer, random_generations
from eggroll_torch.environments import bandit_text as bt

TOK = PieceTokenizer()
TOY = ("FastZero", "UniqueTok", "RepTok")


def as_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_same_array(jax_out, torch_out):
    """Same shape, same dtype name and the same bits (so -0.0 differs from 0.0)."""
    a, b = as_numpy(jax_out), as_numpy(torch_out)
    assert (a.shape, a.dtype.name) == (b.shape, b.dtype.name)
    assert a.tobytes() == b.tobytes(), (a, b)


def outcome(fn):
    """``fn()``'s array, or the exception type it raised."""
    try:
        return fn()
    except Exception as err:  # noqa: BLE001 - the type is compared across sides
        return type(err)


def assert_same_outcome(jax_fn, torch_fn):
    a, b = outcome(jax_fn), outcome(torch_fn)
    if isinstance(a, type) or isinstance(b, type):
        assert a is b, (a, b)
    else:
        assert_same_array(a, b)


# ----------------------------------------------------------------------------------------------
# Module shape
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("module, absent", [
    ("jax_reference.environments.llm_bandits", "torch"),
    ("eggroll_torch.environments.llm_bandits", "jax"),
])
def test_import_needs_no_optional_package_nor_the_other_framework(module, absent):
    code = (f"import sys, {module}\n"
            f"bad = [m for m in ('{absent}', 'reasoning_gym', 'datasets', 'math_verify', 'pyarrow') "
            "if m in sys.modules]\nprint(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_both_sides_have_the_same_names_and_share_the_text_functions():
    assert J.__all__ == T.__all__
    for name in J.__all__:
        theirs, ours = getattr(J, name), getattr(T, name)
        if callable(theirs) and not isinstance(theirs, type):
            assert theirs is ours, name  # one implementation of the string logic
        elif isinstance(theirs, type):
            assert [c.__name__ for c in theirs.__mro__] == [c.__name__ for c in ours.__mro__], name


def test_registries_match_name_for_name():
    for jax_reg, torch_reg in ((J.all_tasks, T.all_tasks), (J.validation_tasks, T.validation_tasks)):
        assert list(jax_reg) == list(torch_reg)
        assert [c.__name__ for c in jax_reg.values()] == [c.__name__ for c in torch_reg.values()]
    assert list(J.all_tasks)[:9] == ["fastzero", "uniquetok", "reptok", "digits", "gsm8k", "gsm8ksft",
                                     "countdownn", "aime24", "aime25"]
    assert len(J.all_tasks) == 9 + len(bt.RG_DATASETS) == 9 + 105
    assert J.all_tasks["arc_1d"].__name__ == "Arc1dTrainRG" and J.validation_tasks["arc_1d"].__name__ == "Arc1dValRG"
    assert T.all_tasks["arc_1d"].__module__ == T.__name__


# ----------------------------------------------------------------------------------------------
# Toy tasks
# ----------------------------------------------------------------------------------------------
def toy_pair(name, steps):
    return getattr(J, name)(TOK, TOK, steps), getattr(T, name)(TOK, TOK, steps)


def edge_rows(length, dtype):
    """All zeros, no zeros, a leading zero, one repeated value, the dtype's extremes."""
    info = np.iinfo(dtype)
    extremes = np.resize(np.array([0, info.max, info.min, info.max, 1], dtype=dtype), length)
    rows = [np.zeros(length), np.arange(1, length + 1), np.r_[0, 0, np.arange(length)][:length], np.full(length, 7)]
    return np.concatenate([np.stack(rows).astype(dtype), extremes[None]])


@pytest.mark.parametrize("name", TOY)
@pytest.mark.parametrize("length", [1, 2, 3, 5, 16, 64])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_toy_fitness_is_bit_identical(name, length, dtype):
    jax_task, torch_task = toy_pair(name, length)
    rng = np.random.default_rng(length)
    batches = [edge_rows(length, dtype), np.zeros((0, length), dtype)]
    batches += [rng.integers(0, high, (32, length)).astype(dtype) for high in (2, 4, 50)]
    for g in batches:
        assert_same_outcome(lambda: jax_task.get_batch_fitness(None, jnp.asarray(g) if dtype != np.int64 else g),
                            lambda: torch_task.get_batch_fitness(None, torch.from_numpy(g)))


def test_toy_fitness_values():
    rows = np.array([[0, 0, 5, 5, 5], [0, 3, 0, 3, 9], [0, 1, 2, 3, 4]], dtype=np.int32)
    expected = {"FastZero": [-0.0, -1.0, -8.0], "UniqueTok": [2.0, 3.0, 4.0], "RepTok": [3.0, 2.0, 1.0]}
    for name, values in expected.items():
        for task in toy_pair(name, 5):
            got = as_numpy(task.get_batch_fitness(None, rows))
            assert got.tolist() == values and np.signbit(got[0]) == (name == "FastZero")


def test_64_bit_tokens_wrap_to_32_bits_as_in_jax():
    rows = np.array([[0, 2**32 + 1, 1, -(2**32) + 1]], dtype=np.int64)  # all three are 1 in 32 bits
    jax_task, torch_task = toy_pair("RepTok", 4)
    assert as_numpy(torch_task.get_batch_fitness(None, torch.from_numpy(rows))).tolist() == [3.0]
    torch_out = torch_task.get_batch_fitness(None, torch.from_numpy(rows))
    assert_same_array(jax_task.get_batch_fitness(None, rows), torch_out)


def test_toy_tasks_refuse_float_tokens_on_the_torch_side():
    with pytest.raises(TypeError, match="integer"):
        T.UniqueTok(TOK, TOK, 3).get_batch_fitness(None, torch.zeros(2, 3))


@pytest.mark.parametrize("name", TOY + ("Digits",))
@pytest.mark.parametrize("shape", [(3,), (2, 3), (0,), ()])
def test_toy_prompts_are_zeros_of_the_same_shape(name, shape):
    jax_task, torch_task = getattr(J, name)(TOK, TOK, 6), getattr(T, name)(TOK, TOK, 6)
    indices = np.zeros(shape, dtype=np.int32)
    assert_same_array(jax_task.get_input(jnp.asarray(indices)), torch_task.get_input(torch.from_numpy(indices)))
    assert as_numpy(torch_task.get_input(torch.from_numpy(indices))).shape == shape + (6,)


@pytest.mark.parametrize("name", TOY + ("Digits",))
def test_len_is_minus_one_so_len_raises(name):
    for task in (getattr(J, name)(TOK, TOK, 4), getattr(T, name)(TOK, TOK, 4)):
        assert task.__len__() == -1
        with pytest.raises(ValueError):
            len(task)


def test_digits_parity_over_random_rows():
    rng = np.random.default_rng(1)
    jax_task, torch_task = J.Digits(TOK, TOK, 24), T.Digits(TOK, TOK, 24)
    seen = set()
    for length in (1, 2, 8, 24):
        g = random_generations(rng, TOK, 64, length)
        g[:4, 1:] = 0  # nothing after the skipped first token
        a = jax_task.get_batch_fitness(None, jnp.asarray(g))
        assert_same_array(a, torch_task.get_batch_fitness(None, torch.from_numpy(g)))
        seen |= set(as_numpy(a).tolist())
    assert {0.0, 1.0, 2.0, 3.0} <= seen


def test_digits_counts_unicode_digits_and_stops_at_zero():
    row = [0] + TOK.encode("a1²①") + [0] + TOK.encode("99")
    for task in (J.Digits(TOK, TOK, len(row)), T.Digits(TOK, TOK, len(row))):
        assert as_numpy(task.get_batch_fitness(None, np.array([row], dtype=np.int32))).tolist() == [3.0]


# ----------------------------------------------------------------------------------------------
# GSM8K
# ----------------------------------------------------------------------------------------------
def gsm8k_pair(cls="GSM8KTrain", steps=96):
    return tuple(getattr(side, cls)(TOK, TOK, steps, data_path=GSM8K_TINY) for side in (J, T))


INDEX_SETS = [np.arange(6), np.array([6, 7, -1, 100, 3]), np.array([2]), np.zeros(0, dtype=np.int64)]


@pytest.mark.parametrize("cls", ["GSM8KTrain", "GSM8KTest", "GSM8KSFT"])
@pytest.mark.parametrize("steps", [8, 96, 400])
def test_gsm8k_prompts_match(cls, steps):
    jax_task, torch_task = gsm8k_pair(cls, steps)
    assert len(jax_task) == len(torch_task) == 6
    for idx in INDEX_SETS:
        jax_idx = jnp.asarray(idx, dtype=jnp.int32)
        assert_same_array(jax_task.get_input(jax_idx), torch_task.get_input(torch.from_numpy(idx)))


def test_gsm8k_prompt_format_and_padding():
    rows = [json.loads(line) for line in GSM8K_TINY.read_text().splitlines()]
    for cls, text in (("GSM8KTrain", f"User: {rows[1]['question']}\n\nAssistant: <think"),
                      ("GSM8KSFT", f"User: {rows[1]['question']}\n\nAssistant: <think{rows[1]['answer']}")):
        for task in gsm8k_pair(cls, 400):
            prompt = as_numpy(task.get_input(np.array([7])))[0]  # 7 % 6 = row 1
            ids = TOK.encode(text)
            assert prompt[:len(ids)].tolist() == ids and not prompt[len(ids):].any()


def answer_rows(task, answers, steps):
    """Row ``i``: prompt ``i`` followed by the encoded ``answers[i]``, cut to ``steps``."""
    prompts = as_numpy(task.get_input(np.arange(len(answers))))
    rows = []
    for prompt, answer in zip(prompts, answers):
        ids = [t for t in prompt.tolist() if t] + TOK.encode(answer)
        rows.append((ids + [0] * steps)[:steps])
    return np.array(rows, dtype=np.int32)


def test_gsm8k_rewards_for_crafted_answers():
    answers = ["> thinking</think> The answer is 18.",  # right, trailing period dropped
               "></think>so 315",                        # right
               "></think>$180",                          # right, '$' dropped
               "> no closing tag 1",                     # no </think>: 0
               "></think>-2 then 300",                   # right: the LAST number counts
               "></think>3.2</think>9"]                  # first </think>, last number 9: wrong
    for task in gsm8k_pair(steps=160):
        got = as_numpy(task.get_batch_fitness(np.arange(6), answer_rows(task, answers, 160)))
        assert got.tolist() == [1.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_gsm8k_reward_parity_over_random_rows():
    rng = np.random.default_rng(2)
    jax_task, torch_task = gsm8k_pair(steps=160)
    total = 0.0
    for trial in range(40):
        idx = rng.integers(-6, 12, 16)
        prompts = as_numpy(jax_task.get_input(jnp.asarray(idx)))
        g = np.stack([random_generations(rng, TOK, 1, 160, [t for t in p.tolist() if t])[0] for p in prompts])
        if trial % 5 == 0:  # a right answer after </think>, to see 1.0s
            g = answer_rows(jax_task, ["></think> " + a for a in ("18", "315", "180", "1", "300", "3.2")], 160)
            idx = np.arange(6)
        g[0] = 0  # an all-zero row decodes to "" and scores 0
        a = jax_task.get_batch_fitness(jnp.asarray(idx), jnp.asarray(g))
        assert_same_array(a, torch_task.get_batch_fitness(torch.from_numpy(idx), torch.from_numpy(g)))
        total += float(as_numpy(a).sum())
    assert total >= 8 * 5  # crafted rows 1-5 of every fifth trial are right


def test_gsm8k_rows_past_the_indices():
    """An empty row never looks its answer up; a non-empty one past ``len(indices)`` raises."""
    text = np.array([TOK.encode("</think>1")] * 3, dtype=np.int32)
    for task in gsm8k_pair():
        assert as_numpy(task.get_batch_fitness(np.arange(2), np.zeros((3, 96), dtype=np.int32))).tolist() == [0.0] * 3
        with pytest.raises(IndexError):
            task.get_batch_fitness(np.arange(2), text)


@pytest.mark.parametrize("text, expected", [
    ("The answer is 42.", "42"), ("1,000 dollars", "1000"), ("cost $5", "5"), ("-7 degrees", "-7"),
    ("3.50", "3.50"), ("a 5. b 6", "6"), ("no numbers here", None), ("$.", ""), ("...", ".."),
    ("9 and then 10,", "10"), ("5..", "5."), ("x-$3", "-3"), ("#### 12", "12"),
])
def test_extract_predicted_answer_examples(text, expected):
    assert bt.extract_predicted_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("steps\n#### 72", "72"), ("no marker ", "no marker"), ("1#####2", "#2"), ("a #### b #### c", "c"),
])
def test_extract_ground_truth_examples(text, expected):
    assert bt.extract_ground_truth(text) == expected


def test_single_fitness_and_helpers():
    assert bt.single_fitness("x</think> 0.5", "#### 0.50", 0) == 0.0  # compared as strings
    assert bt.single_fitness("x</think> 1,000", "#### 1,000", 0) == 0.0  # gold keeps its comma
    assert bt.single_fitness("</think>7", "#### 7", 3) == 1.0
    assert bt.strip_thoughts("a</think>b</think>c") == "b</think>c" and bt.strip_thoughts("abc") == "abc"
    assert bt.get_padded_prompt([5, 6, 7], 2) == [5, 6] and bt.get_padded_prompt([5], 3) == [5, 0, 0]
    assert bt.safe_decode(np.array(TOK.encode("ab") + [0, 5]), TOK) == "ab"
    assert bt.safe_decode(TOK.encode("ab") + [0, 5], TOK) == ""  # a list is not cut: decoding 0 fails
    assert bt.safe_decode(np.array([TOK.invalid_byte]), TOK) == ""


# ----------------------------------------------------------------------------------------------
# Task data
# ----------------------------------------------------------------------------------------------
def test_json_and_jsonl_give_the_same_rows(tmp_path):
    rows = bt.read_records(GSM8K_TINY)
    as_json = tmp_path / "gsm8k.json"
    as_json.write_text(json.dumps(rows))
    assert bt.read_records(as_json) == rows and len(rows) == 6


def test_parquet_rows(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = bt.read_records(GSM8K_TINY)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    assert bt.read_records(tmp_path / "train.parquet") == rows


def test_bad_task_files(tmp_path):
    with pytest.raises(ValueError, match=".csv"):
        bt.read_records(tmp_path / "train.csv")
    no_answer = tmp_path / "rows.jsonl"
    no_answer.write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="answer"):
        J.GSM8KTrain(TOK, TOK, 8, data_path=no_answer)


def test_without_a_path_the_hub_needs_datasets(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)
    for side in (J, T):
        with pytest.raises(ImportError, match="'datasets' package.*or pass data_path"):
            side.GSM8KTrain(TOK, TOK, 8)


@pytest.mark.parametrize("cls, hub", [
    ("GSM8KTrain", ("openai/gsm8k", "main", "train")), ("GSM8KTest", ("openai/gsm8k", "main", "test")),
    ("GSM8KSFT", ("openai/gsm8k", "main", "train")),
    ("AIMETrain", ("agentica-org/DeepScaleR-Preview-Dataset", None, "train")),
    ("AIMETrainAIME", ("gneubig/aime-1983-2024", None, "train")),
    ("AIME24Test", ("HuggingFaceH4/aime_2024", None, "train")), ("AIME25Test", ("math-ai/aime25", None, "test")),
])
def test_without_a_path_each_task_loads_upstreams_hub_split(monkeypatch, cls, hub):
    calls = []

    def load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return bt.read_records(GSM8K_TINY if cls.startswith("GSM") else AIME_TINY)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    for side in (J, T):
        assert len(getattr(side, cls)(TOK, TOK, 8)) in (4, 6)
    assert calls == [hub, hub]


# ----------------------------------------------------------------------------------------------
# ReasoningGym and AIME, with stand-ins for their packages
# ----------------------------------------------------------------------------------------------
class FakeRGDataset:
    """A ReasoningGym-like dataset: sums to compute; a right answer scores 1.0, a number 0.01."""

    def __init__(self, name, size, seed, config):
        self.args = (name, size, seed, config)
        rng = np.random.default_rng(seed)
        self.items = [{"question": f"{a} + {b}", "answer": str(a + b)} for a, b in rng.integers(0, 50, (size, 2))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, n):
        return self.items[n]

    def score_answer(self, answer, entry):
        return 1.0 if answer == entry["answer"] else (0.01 if answer.isdigit() else 0.0)


@pytest.fixture
def fake_reasoning_gym(monkeypatch):
    module = types.SimpleNamespace(create_dataset=lambda name, size, seed, **config: FakeRGDataset(
        name, size, seed, config))
    monkeypatch.setitem(sys.modules, "reasoning_gym", module)


@pytest.mark.usefixtures("fake_reasoning_gym")
@pytest.mark.parametrize("task, args", [
    ("countdownn", ("countdown", 256, 42, {"min_numbers": 3, "max_numbers": 4})),
    ("chain_sum", ("chain_sum", 10000, 42, {})), ("arc_1d", ("arc_1d", 10000, 42, {})),
])
def test_rg_tasks_build_upstreams_datasets(task, args):
    val_args = (args[0], 128, 1337, args[3]) if task == "countdownn" else (args[0], 2000, 1337, {})
    for side in (J, T):
        assert side.all_tasks[task](TOK, TOK, 8).dataset.args == args
        assert side.validation_tasks[task](TOK, TOK, 8).dataset.args == val_args
    assert len(J.all_tasks[task](TOK, TOK, 8, dataset_size=5)) == 5


@pytest.mark.usefixtures("fake_reasoning_gym")
def test_rg_prompts_and_rewards_match():
    jax_task, torch_task = (side.ReasoningGymTrain(TOK, TOK, 160, dataset_size=5, seed=3) for side in (J, T))
    idx = np.array([0, 1, 2, 3, 4, 7, -1])
    assert_same_array(jax_task.get_input(jnp.asarray(idx)), torch_task.get_input(torch.from_numpy(idx)))
    prompt = as_numpy(jax_task.get_input(np.array([0])))[0]
    assert TOK.decode(prompt[prompt > 0]) == bt.make_rg_prompt(jax_task.dataset[0]["question"])
    answers = [jax_task.dataset[n % 5]["answer"] for n in idx]
    texts = [f"></think> {answers[0]} ", f"></think>{answers[1]}", "></think>", "no think 3", f"</think>{answers[4]}x",
             f"</think>{answers[5]}", "</think> 999"]
    g = np.array([(TOK.encode(t) + [0] * 40)[:40] for t in texts], dtype=np.int32)
    a = jax_task.get_batch_fitness(jnp.asarray(idx), jnp.asarray(g))
    assert as_numpy(a).tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.01])
    assert_same_array(a, torch_task.get_batch_fitness(torch.from_numpy(idx), torch.from_numpy(g)))
    # pairs up to the shorter of indices and rows
    assert_same_array(jax_task.get_batch_fitness(jnp.asarray(idx[:3]), g), torch_task.get_batch_fitness(idx[:3], g))
    assert as_numpy(torch_task.get_batch_fitness(idx[:3], g)).shape == (3,)


def test_rg_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)
    for side in (J, T):
        with pytest.raises(ImportError, match="reasoning-gym"):
            side.all_tasks["countdownn"](TOK, TOK, 8)


@pytest.fixture
def fake_math_verify(monkeypatch):
    def parse(text):
        if "boom" in text:
            raise RuntimeError("unparseable")
        return text.replace(" ", "")

    module = types.SimpleNamespace(parse=parse, verify=lambda gold, pred: gold == pred)
    monkeypatch.setitem(sys.modules, "math_verify", module)
    bt._parse_gold_cached.cache_clear()
    yield
    bt._parse_gold_cached.cache_clear()


@pytest.mark.usefixtures("fake_math_verify")
def test_aime_prompts_and_rewards_match():
    jax_task, torch_task = (side.AIMETrain(TOK, TOK, 200, data_path=AIME_TINY) for side in (J, T))
    idx = np.array([0, 1, 2, 3, 5])
    assert_same_array(jax_task.get_input(jnp.asarray(idx)), torch_task.get_input(torch.from_numpy(idx)))
    texts = ["think</think> 2", "</think>7 20", "</think>\\frac{3}{4}", "no tag", "</think> 7 20 "]
    g = np.array([(TOK.encode(t) + [0] * 30)[:30] for t in texts], dtype=np.int32)
    a = jax_task.get_batch_fitness(jnp.asarray(idx), jnp.asarray(g))
    assert as_numpy(a).tolist() == [1.0, 1.0, 1.0, 0.0, 1.0]  # "no tag" is compared whole: wrong
    assert_same_array(a, torch_task.get_batch_fitness(torch.from_numpy(idx), torch.from_numpy(g)))
    assert bt._score_with_math_verify("boom", "2") == 0.0 and bt._score_with_math_verify("", "2") == 0.0


def test_aime_rows_without_problem_or_answer_score_zero(tmp_path, monkeypatch):
    data = tmp_path / "aime.jsonl"
    data.write_text(json.dumps({"Question": "q", "Answer": "2"}) + "\n")
    monkeypatch.setitem(sys.modules, "math_verify", types.SimpleNamespace(
        parse=lambda text: text.strip() if isinstance(text, str) else text.missing, verify=lambda g, p: g == p))
    bt._parse_gold_cached.cache_clear()
    task = T.AIMETrainAIME(TOK, TOK, 200, data_path=data)
    assert "Question: None\nAssistant: <think" in task.dataset[0]["prompt"]
    assert as_numpy(task.get_batch_fitness(np.array([0]), np.array([TOK.encode("</think>2")]))).tolist() == [0.0]
    bt._parse_gold_cached.cache_clear()


def test_aime_without_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "math_verify", None)
    bt._parse_gold_cached.cache_clear()
    task = J.AIME25Test(TOK, TOK, 50, data_path=AIME_TINY)
    with pytest.raises(ImportError, match="math-verify"):
        task.get_batch_fitness(np.array([0]), np.array([TOK.encode("</think>2")]))
