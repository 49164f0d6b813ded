"""Token generation for a whole population at once (``jax_reference.llm.utils``'s mirror).

Every member (thread id ``i``, epoch ``e``) generates exactly as its JAX counterpart: it reads its
prompt one token per step with the recurrent state carried, is fed its own previous sample where
the prompt holds 0 (0 at the first step), returns what it was fed, samples step ``t`` with the
second half of the ``t``-th split of ``fold_in(fold_in(master_gen_key, e), i)``, and runs with
``iterinfo = (e, i)``. Here the members are not vmapped: one population forward per step feeds
all ``B`` members ``(B, 1)`` tokens and carries a ``(B, ...)`` state, so each step is one batched
matmul per weight plus each member's rank-``r`` noise terms. Each member's noise is drawn once
per generation (:mod:`.member_noise`); on CUDA the token steps are recorded as CUDA graphs once
and replayed by later calls (:mod:`.token_loop`; ``cuda_graph=False`` runs them eagerly).
"""
from __future__ import annotations

import collections
import re

import torch

from eggroll_torch import random as es_random
from eggroll_torch import tree
from eggroll_torch.environments.llm_bandits import safe_decode
from eggroll_torch.nn.param_writes import write
from eggroll_torch.noiser.base_noiser import Noiser
from eggroll_torch.random import config as es_config
from eggroll_torch.random.float_bits import FORMATS
from eggroll_torch.random.gumbel import gumbel_of_mantissas
from eggroll_torch.random.sampling import draw_lookup
from eggroll_torch.random.triton_support import triton_usable

from .member_noise import drawn_noiser, member_noise
from .token_loop import STEPS_PER_GRAPH, RecordedLoop, run_steps

__all__ = ["build_generate_batch", "build_validate", "fold_in_helper", "gumbel_noise", "safe_decode", "sample_token"]


def fold_in_helper(key: torch.Tensor, epoch, true_thread_idx) -> torch.Tensor:
    """``fold_in(fold_in(key, epoch), true_thread_idx)``; ``true_thread_idx`` may be a ``(B,)``
    tensor, giving ``(B, 2)`` keys."""
    return es_random.fold_in(es_random.fold_in(key, epoch), true_thread_idx)


_GUMBEL_TABLES: dict = {}
# Values drawn without a table so far, per (dtype, device): building a table costs about as much
# as drawing its size directly, so it is built once that many have been drawn (at most twice the
# cost of the cheaper choice, whatever the run's length).
_DIRECT_DRAWS: collections.Counter = collections.Counter()


def _gumbel_table(dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``gumbel_of_mantissas`` of every mantissa: ``(2**mantissa,)`` (128 for bfloat16, 2**23 for
    float32), built once per dtype and device."""
    if (dtype, device) not in _GUMBEL_TABLES:
        _GUMBEL_TABLES[dtype, device] = gumbel_of_mantissas(torch.arange(FORMATS[dtype].mask + 1, device=device), dtype)
    return _GUMBEL_TABLES[dtype, device]


def gumbel_noise(keys: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """``es_random.gumbel(keys, (n,), dtype)`` for ``keys (B, 2)``: ``(B, n)``, the same values.

    Each value is looked up from its draw's bits in :func:`_gumbel_table` (one Triton pass on
    CUDA) instead of running the logarithms' exact float64 arithmetic on every draw: always on
    CUDA (where this also keeps host copies out of a CUDA graph), elsewhere once the table's
    size has been drawn directly (at once for bfloat16's 128 values).
    """
    if dtype not in (torch.float32, torch.bfloat16):
        return es_random.gumbel(keys, (n,), dtype)
    fmt, device = FORMATS[dtype], keys.device
    if not keys.is_cuda and (dtype, device) not in _GUMBEL_TABLES:
        _DIRECT_DRAWS[dtype, device] += keys.shape[0] * n
        if _DIRECT_DRAWS[dtype, device] <= fmt.mask + 1:
            return es_random.gumbel(keys, (n,), dtype)
    table = _gumbel_table(dtype, device)
    if triton_usable(device) and es_config.threefry_partitionable():
        from .gumbel_triton import lookup

        return lookup(keys, n, table, fmt.shift, fmt.mask)
    return draw_lookup(keys, (n,), fmt.draw_width, None, table, fmt.shift, fmt.mask)


def _categorical(keys: torch.Tensor, logits: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
    scaled = logits / divisor
    noise = gumbel_noise(keys, logits.shape[-1], logits.dtype)
    return torch.argmax(noise + scaled, dim=-1).to(torch.int32)


def _divisor(temperature: float, logits: torch.Tensor) -> torch.Tensor:
    return torch.tensor(temperature, dtype=logits.dtype, device=logits.device)


def sample_token(keys: torch.Tensor, logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """One token per row of ``logits (B, V)`` with its own key of ``keys (B, 2)``: JAX's
    ``categorical(key, logits / temperature)`` (Gumbel noise in the logits' dtype, first argmax),
    or the first argmax when ``temperature == 0``. The division is in the logits' dtype, as JAX
    divides by a weakly typed Python float. Returns ``(B,)`` int32."""
    if temperature == 0.0:
        return torch.argmax(logits, dim=-1).to(torch.int32)
    return _categorical(keys, logits, _divisor(temperature, logits))


def _check_batch(prompts, thread_idxs):
    if not isinstance(prompts, torch.Tensor) or prompts.ndim != 2:
        raise ValueError(f"prompts must be a (B, T) integer tensor; got {getattr(prompts, 'shape', type(prompts))}")
    if not isinstance(thread_idxs, torch.Tensor) or thread_idxs.shape != prompts.shape[:1]:
        raise ValueError(
            f"thread_idxs must be a ({prompts.shape[0]},) tensor, one thread id per prompt row; "
            f"got {getattr(thread_idxs, 'shape', type(thread_idxs))}")


# The oldest torch the compiled forward was run with: the pinned 2.13 on the CPU, and 2.11 on an
# H100 (float32 tokens identical to eager, tests/llm/test_llm_loop.py), once its graph break at a
# functools.cache call and a bool-as-uint8 view inductor rejects were gone.
_COMPILE_MIN_TORCH = (2, 11)


def _torch_release(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def _compiled_forward(MODEL):
    """``MODEL.forward`` under ``torch.compile``, keeping the eager loop's low-precision roundings."""
    return torch.compile(MODEL.forward, dynamic=False, options={"emulate_precision_casts": True})


class _Generation:
    """The tensors one generation's token steps read and write, and the step itself.

    ``prompts (N, T)`` int32, ``epochs``/``threads (N,)`` (the ``iterinfo``), ``keys (N, 2)``
    (split at every step), ``previous (N,)`` (the last sample), ``fed (N, T)`` (what each step
    fed: the result), ``position (1,)`` (a device counter) and the drawn noise. Every step reads
    and writes only these (a CUDA graph replays it on them) and never the host.
    """

    def __init__(self, model, noiser_params, params, prompts, threads, epochs, keys):
        self.model = model
        self.noiser_params, self.params = noiser_params, params
        self.prompts, self.threads, self.epochs, self.keys = prompts, threads, epochs, keys
        self.previous = torch.zeros(threads.shape, dtype=torch.int32, device=prompts.device)
        self.fed = torch.empty_like(prompts)
        self.position = torch.zeros((1,), dtype=torch.int64, device=prompts.device)
        self.noise = None
        self.divisor = None

    def inputs(self) -> list:
        """The tensors a call fills: those of the params and ``noiser_params`` the forward reads
        (:func:`_forward_reads`), then the prompts, thread ids, epochs and keys."""
        return _call_leaves(self.noiser_params, self.params) + [self.prompts, self.threads, self.epochs, self.keys]

    def step(self, state: torch.Tensor, first: bool) -> torch.Tensor:
        """One token for every member. The first step of a generation restarts its counters and
        draws each member's noise (:mod:`.member_noise`) with the eager forward: a compiled graph
        would trace the drawing as a side effect and be recompiled after."""
        m = self.model
        if first:
            self.position.zero_()
            self.previous.zero_()
            self.noise = member_noise(m.noiser, self.params, m.base_evo_keys)
        column = self.prompts.index_select(1, self.position)[:, 0]
        tokens = torch.where(column == 0, self.previous, column)
        self.fed.index_copy_(1, self.position, tokens[:, None])
        split = es_random.split(self.keys)
        self.keys.view(torch.int32).copy_(split[:, 0].view(torch.int32))
        forward = m.MODEL.forward if first else (m.compiled or m.MODEL.forward)
        logits, state = forward(m.noiser, m.frozen_noiser_params, self.noiser_params, m.config, self.params,
                                self.noise, (self.epochs, self.threads), tokens[:, None], state)
        if m.temperature == 0.0:
            self.previous.copy_(torch.argmax(logits[:, -1], dim=-1))
        else:
            if self.divisor is None:
                self.divisor = _divisor(m.temperature, logits)
            self.previous.copy_(_categorical(split[:, 1], logits[:, -1], self.divisor))
        self.position.add_(1)
        return state


def _forward_reads(noiser_params, params) -> tuple:
    """``(noiser_params, params)`` as far as the forward reads them: ``opt_state`` left out."""
    if isinstance(noiser_params, dict):
        noiser_params = {k: v for k, v in noiser_params.items() if k != "opt_state"}
    return noiser_params, params


def _call_leaves(noiser_params, params) -> list:
    """The tensors of :func:`_forward_reads`, in tree order."""
    return [x for x in tree.leaves(_forward_reads(noiser_params, params)) if torch.is_tensor(x)]


def _signature(noiser_params, params) -> tuple:
    """What a recording depends on beyond the values of the params and ``noiser_params`` tensors
    it copies in: their shapes, dtypes and devices, the trees' structures and the values of the
    leaves that are not tensors (``sigma``), which the recorded kernels hold as constants."""
    flat, structure = tree.flatten(_forward_reads(noiser_params, params))
    described = tuple((tuple(x.shape), x.dtype, x.device) if torch.is_tensor(x) else ("value", repr(x)) for x in flat)
    return structure, described


class _Recorded:
    """A generation of one prompt shape recorded as CUDA graphs, on ``noiser_params`` and
    ``params`` (the static copies it reads) and copies of the other inputs."""

    def __init__(self, model, noiser_params, params, prompts, threads, epochs, keys, state):
        self.generation = _Generation(model, noiser_params, params, prompts.clone(), threads.clone(), epochs.clone(),
                                      keys.clone())
        self.loop = RecordedLoop(self.generation.step, state.clone(memory_format=torch.contiguous_format))
        self.loop.warm_up()

    def __call__(self, noiser_params, params, prompts, threads, epochs, keys, state, n_steps):
        gen = self.generation
        write(gen.inputs(), _call_leaves(noiser_params, params) + [prompts, threads, epochs, keys])
        self.loop.buffer.copy_(state)
        self.loop.run(n_steps)
        return gen.fed.clone()


class _Recordings:
    """The recorded generations of one generate function: one static copy of what the forward
    reads of the params and ``noiser_params`` (made again when :func:`_signature` changes, which
    drops every recording), shared by one recording per prompt shape, the :attr:`KEPT` most
    recently used kept (a population generated in chunks alternates two shapes)."""

    KEPT = 2

    def __init__(self, model):
        self.model = model
        self.signature, self.reads, self.by_shape = None, None, {}

    def __call__(self, noiser_params, params, prompts, threads, epochs, keys, state, n_steps):
        signature = _signature(noiser_params, params)
        if signature != self.signature:
            self.by_shape.clear()
            self.signature = signature
            self.reads = tree.map(lambda x: x.clone() if torch.is_tensor(x) else x,
                                  _forward_reads(noiser_params, params))
        shape = tuple(prompts.shape)
        recording = self.by_shape.pop(shape, None)
        if recording is None:
            while len(self.by_shape) >= self.KEPT:
                self.by_shape.pop(next(iter(self.by_shape)))
            recording = _Recorded(self.model, *self.reads, prompts, threads, epochs, keys, state)
        self.by_shape[shape] = recording
        return recording(noiser_params, params, prompts, threads, epochs, keys, state, n_steps)


class _Model:
    """What every generation of one generate function shares."""

    def __init__(self, MODEL, noiser, compiled, frozen_noiser_params, config, base_evo_keys, temperature):
        self.MODEL, self.noiser, self.compiled = MODEL, noiser, compiled
        self.frozen_noiser_params, self.config = frozen_noiser_params, config
        self.base_evo_keys, self.temperature = base_evo_keys, temperature


def build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys, master_gen_key,
                         temperature=1.0, *, cuda_graph=True, compile=False):
    """``generate_batch(noiser_params, params, prompts, thread_idxs, epoch_num) -> tokens``.

    ``prompts (B, T)`` integer (0 where the member samples), ``thread_idxs (B,)``, ``epoch_num``
    an int; ``tokens (B, T)`` int32 on the params' device. ``temperature`` 0 is greedy decoding.
    Each member's noise is drawn once per call (:mod:`.member_noise`), not once per token.

    On CUDA (unless ``cuda_graph=False``, or with fewer than ``2 * STEPS_PER_GRAPH`` tokens) the
    token steps are recorded as CUDA graphs (:mod:`.token_loop`) on the first call and replayed
    by later calls: each call copies its params, ``noiser_params`` tensors, prompts, thread ids,
    epochs and keys into the recorded ones, so the tokens are the eager loop's. The recordings
    keep one copy of the params (``noiser_params["opt_state"]`` aside: the forward never reads
    it), made again, with every recording dropped, when the params' or ``noiser_params``' shapes,
    dtypes, devices, tree structures or non-tensor values (``sigma``) change; and one recording
    per prompt shape, the two most recently used (a population generated in chunks has two).

    ``compile=True`` runs the model's forward through ``torch.compile`` (inductor, static shapes)
    from each call's second token step on (the first draws the members' noise eagerly): each
    layer's chains of elementwise ops become a few fused kernels instead of hundreds of small
    ones. The arithmetic is the eager loop's, with bfloat16/float16 intermediates rounded where
    eager rounds them (inductor's ``emulate_precision_casts``), but fused reductions sum in
    another order, so logits can differ in the last bits and, rarely, a sampled token with
    them. The first call compiles (tens of seconds); later calls with the same shapes reuse it.
    It needs torch >= 2.11 (the oldest it was tested with).
    """
    if not isinstance(compile, bool):
        raise TypeError(f"compile must be True or False; got {compile!r}")
    if compile and _torch_release(torch.__version__) < _COMPILE_MIN_TORCH:
        raise ValueError(f"compile=True needs torch >= {'.'.join(map(str, _COMPILE_MIN_TORCH))} (the oldest it was "
                         f"tested with); this is torch {torch.__version__}: upgrade torch or pass compile=False")
    model = _Model(MODEL, drawn_noiser(NOISER), _compiled_forward(MODEL) if compile else None, frozen_noiser_params,
                   config, base_evo_keys, temperature)
    recordings = _Recordings(model)

    def generate_batch(noiser_params, params, prompts, thread_idxs, epoch_num):
        _check_batch(prompts, thread_idxs)
        device = master_gen_key.device
        prompts = prompts.to(device=device, dtype=torch.int32)
        thread_idxs = thread_idxs.to(device)
        n_members, n_steps = prompts.shape
        epochs = torch.full((n_members,), int(epoch_num), dtype=torch.int32, device=device)
        keys = fold_in_helper(master_gen_key, int(epoch_num), thread_idxs)
        one = MODEL.default_state(params, config)
        state = one.expand(n_members, *one.shape)
        with torch.no_grad():
            if not (cuda_graph and device.type == "cuda" and n_steps >= 2 * STEPS_PER_GRAPH):
                generation = _Generation(model, noiser_params, params, prompts, thread_idxs, epochs, keys)
                run_steps(generation.step, state, n_steps)
                return generation.fed
            return recordings(noiser_params, params, prompts, thread_idxs, epochs, keys, state, n_steps)

    return generate_batch


def build_validate(MODEL, config, params_example, base_evo_keys, master_gen_key, validation_task,
                   parallel_validations, validation_iterations, temperature=1.0, NOISER=Noiser, sigma=0.0, *,
                   compile=False, cuda_graph=True):
    """``validate(params, epoch) -> mean fitness`` (a 0-d float32 tensor) of the unperturbed model,
    as ``jax_reference.llm.utils.build_validate``: prompt indices ``i * parallel_validations +
    arange(parallel_validations)`` of iteration ``i`` double as thread ids, and the fitnesses are
    summed in float32. ``compile``, ``cuda_graph``: as :func:`build_generate_batch`'s."""
    frozen_noiser_params, noiser_params = NOISER.init_noiser(params_example, sigma, 0.0)
    generate_batch = build_generate_batch(MODEL, NOISER, frozen_noiser_params, config, base_evo_keys,
                                          master_gen_key, temperature, cuda_graph=cuda_graph, compile=compile)

    def validate(params, epoch):
        total = torch.zeros((), dtype=torch.float32)
        for i in range(validation_iterations):
            indices = torch.arange(parallel_validations) + i * parallel_validations
            prompts = torch.as_tensor(validation_task.get_input(indices))
            outputs = generate_batch(noiser_params, params, prompts, indices, epoch)
            fitness = torch.as_tensor(validation_task.get_batch_fitness(indices, outputs.cpu()), dtype=torch.float32)
            total = total + fitness.sum()
        return total / (parallel_validations * validation_iterations)

    return validate
