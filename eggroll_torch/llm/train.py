"""``python -m eggroll_torch.llm train``: evolve an RWKV-7 on an LLM bandit task from the command line.

Examples::

    # a tiny random model on the CPU, 20 epochs of FastZero, logs and checkpoints in runs/fz
    python -m eggroll_torch.llm train --model random:n_layer=2,n_head=2,head_size=8,vocab_size=64 \\
        --task fastzero --epochs 20 --population 64 --generation-length 32 --sigma 0.05 --out runs/fz
    # continue it for 10 more epochs (the same settings; --epochs is the new total)
    python -m eggroll_torch.llm train ... --epochs 30 --out runs/fz --resume
    # an official RWKV-7 checkpoint on a GPU, GSM8K from a local file, 4 GPUs
    torchrun --nproc-per-node 4 -m eggroll_torch.llm train --model rwkv7-g1-0.1b.pth --dtype bfloat16 \\
        --device cuda --task gsm8k --data-path gsm8k_train.jsonl --out runs/gsm8k

``--model`` is a ``.pth`` state dict in the official RWKV-7 layout, a published shape of
``RWKV7_SHAPES`` (``0.1B``, ``0.4B``: random weights of that shape, seeded by ``--seed``) or
``random:n_layer=..,n_head=..,head_size=..,vocab_size=..`` for a small random model.

``--out DIR`` receives ``checkpoint.pt`` (params, noiser state, next epoch and the settings,
written atomically after every ``--save-every`` epochs and at the end), ``log.csv`` and
``log.jsonl`` (one row per epoch: fitness statistics, update sizes, tokens/s, seconds).
``--resume`` continues from ``DIR/checkpoint.pt``; it refuses a checkpoint written with other
settings and names the ones that differ. A resumed run gives the same numbers as an uninterrupted
one: every random draw is a function of the seed, the epoch and the thread id.

Under ``torchrun`` the members are split over the ranks (whole groups of
``--generations-per-prompt``); only the N scores cross the network and every rank applies the
same update, so the result does not depend on the number of ranks beyond the batch size each
forward sees (fix it with ``--members-per-call``). Rank 0 writes the logs and checkpoints.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from eggroll_torch import tree
from eggroll_torch.environments.llm_bandits import all_tasks, validation_tasks
from eggroll_torch.models.llm import rwkv7
from eggroll_torch.models.llm.checkpoints import RWKV7_SHAPES, rwkv7_state_dict

from .evolution import Evolution, EvolutionConfig

__all__ = ["build_parser", "load_model", "main", "run"]

CHECKPOINT_FORMAT = "eggroll_torch.llm/1"
VARIANTS = ("BaseRWKV", "ScanRWKV", "AssociativeScanRWKV", "FastRWKV")
LOG_FIELDS = ("epoch", "avg_fitness", "std_fitness", "max_fitness", "min_fitness", "median_fitness",
              "lora_updates", "nonlora_updates", "validation_score", "tokens_per_s", "seconds")
_SPEC_FIELDS = ("n_layer", "n_head", "head_size", "vocab_size")
# Settings that must match for --resume to continue a run rather than start a different one.
_RUN_FIELDS = ("model", "variant", "dtype", "task", "data_path", "tokenizer")


def _random_spec(spec: str) -> dict:
    body = spec[len("random:"):]
    try:
        values = {name.strip(): int(value) for name, value in (item.split("=") for item in body.split(","))}
    except ValueError:
        values = {}
    if sorted(values) != sorted(_SPEC_FIELDS) or min(values.values()) < 1:
        raise ValueError(f"--model {spec!r}: write random:n_layer=L,n_head=H,head_size=S,vocab_size=V "
                         "with positive ints")
    return values


def load_model(model: str, variant: str, dtype: torch.dtype, device: torch.device, seed: int):
    """``(MODEL, init)`` for a ``--model`` value (see the module docstring), on ``device``."""
    if variant not in VARIANTS:
        raise ValueError(f"--variant must be one of {VARIANTS}; got {variant!r}")
    MODEL = getattr(rwkv7, variant)
    if model.startswith("random:"):
        state_dict = rwkv7_state_dict(seed, **_random_spec(model), lora_dims=(8, 8, 4, 8))
    elif model in RWKV7_SHAPES:
        state_dict = rwkv7_state_dict(seed, **RWKV7_SHAPES[model])
    elif Path(model).suffix == ".pth":
        if not Path(model).is_file():
            raise FileNotFoundError(f"--model {model!r}: no such file")
        state_dict = torch.load(model, map_location="cpu", weights_only=True)
    else:
        raise ValueError(f"--model {model!r}: give a .pth file, one of {sorted(RWKV7_SHAPES)} or "
                         "random:n_layer=L,n_head=H,head_size=S,vocab_size=V")
    init = MODEL.load_from_torch(state_dict, None, dtype)
    return MODEL, init._replace(params=tree.map(lambda x: x.to(device), init.params))


def _tokenizer(name: str):
    if name == "none":
        return None
    from eggroll_torch.models.llm import tokenizer

    return {"world": tokenizer.WorldTokenizer, "gpt-neox": tokenizer.GptTokenizer}[name]()


def _task(args, tokenizer, registry):
    key = args.task.lower()
    if key not in registry:
        raise ValueError(f"--task must be one of {sorted(registry)} (any case); got {args.task!r}")
    cls = registry[key]
    if args.data_path is not None:
        cls = functools.partial(cls, data_path=args.data_path)
    return cls(tokenizer, tokenizer, args.generation_length)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eggroll_torch.llm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="evolve a language model on a bandit task")
    add = train.add_argument
    add("--model", required=True, help=".pth file, a published shape (0.1B, 0.4B) or random:n_layer=..,...")
    add("--task", required=True, help=f"one of {sorted(all_tasks)}")
    add("--variant", default="ScanRWKV", choices=VARIANTS)
    add("--dtype", default="float32", choices=("float32", "bfloat16"))
    add("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available; under torchrun "
                                       "each rank's own device)")
    add("--tokenizer", default="world", choices=("world", "gpt-neox", "none"),
        help="decodes generations for the text tasks (default world; toy tasks need none)")
    add("--data-path", default=None, help="local .jsonl/.json/.parquet file of a hub-backed task (GSM8K, AIME)")
    add("--epochs", type=int, default=10, help="total epochs of the run (a resumed run continues up to it)")
    add("--population", type=int, default=64, help="members N, a multiple of --generations-per-prompt")
    add("--generations-per-prompt", type=int, default=8)
    add("--generation-length", type=int, default=32, help="tokens per generation, prompt included")
    add("--sigma", type=float, default=1e-3)
    add("--lr", type=float, default=1.0, help="the noiser's learning rate (upstream's lr_scale)")
    add("--rank", type=int, default=1, help="EGGROLL noise rank")
    add("--noise-reuse", type=int, default=1)
    add("--train-nonlora", action="store_true", help="also perturb and update the non-matrix parameters")
    add("--temperature", type=float, default=0.0, help="sampling temperature; 0 is greedy")
    add("--noiser", default="eggroll")
    add("--seed", type=int, default=0)
    add("--validate-every", type=int, default=0, help="validate before every k-th epoch (0: never)")
    add("--parallel-validations", type=int, default=128)
    add("--validation-iterations", type=int, default=1)
    add("--compile", action="store_true",
        help="run the model's forward under torch.compile (fused kernels; compiles on the first epoch; "
             "faster on the CPU; on the GPU see the README)")
    add("--members-per-call", type=int, default=None, help="members per population forward (default all)")
    add("--no-cuda-graph", dest="cuda_graph", action="store_false",
        help="on CUDA, run every token step's Python instead of replaying the steps recorded as CUDA graphs "
             "(slower; saves the copy of the params the recording keeps)")
    add("--out", default=None, help="directory for checkpoint.pt, log.csv and log.jsonl")
    add("--save-every", type=int, default=1, help="write the checkpoint every k epochs (and at the end)")
    add("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    add("--no-progress", action="store_true", help="no progress line on stderr")
    return parser


def _config(args) -> EvolutionConfig:
    return EvolutionConfig(
        seed=args.seed, generation_length=args.generation_length, parallel_generations=args.population,
        generations_per_prompt=args.generations_per_prompt, sigma=args.sigma, lr_scale=args.lr,
        noise_reuse=args.noise_reuse, freeze_nonlora=not args.train_nonlora, rank=args.rank,
        temperature=args.temperature, noiser=args.noiser, validate_every=args.validate_every,
        parallel_validations=args.parallel_validations, validation_iterations=args.validation_iterations)


def _settings(args, config) -> dict:
    return {"config": dataclasses.asdict(config), **{name: getattr(args, name) for name in _RUN_FIELDS}}


def _check_args(args) -> None:
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1; got {args.epochs}")
    if args.save_every < 1:
        raise ValueError(f"--save-every must be >= 1; got {args.save_every}")
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out DIR, the directory holding checkpoint.pt")


class _Distributed:
    """This process's share of the members under ``torchrun`` (or the whole population alone)."""

    def __init__(self, population: int, group: int, device_arg):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        if self.world == 1:
            self.rank, self.members, self.ranges = 0, None, None
            self.device = torch.device(device_arg or ("cuda" if torch.cuda.is_available() else "cpu"))
            return
        from eggroll_torch.distributed import init_distributed, member_ranges

        backend = "gloo" if device_arg == "cpu" or not torch.cuda.is_available() else "nccl"
        self.device = init_distributed(backend)
        self.rank = torch.distributed.get_rank()
        self.ranges = member_ranges(population, self.world, block=group if group % 2 == 0 else 2 * group)
        self.members = self.ranges[self.rank]

    def exchange(self, local: torch.Tensor) -> torch.Tensor:
        from eggroll_torch.distributed.fitness_exchange import gather_fitness

        comm = self.device if self.device.type == "cuda" else torch.device("cpu")
        return gather_fitness(local.to(comm), self.ranges, comm_device=comm, out_device=self.device,
                              when="after generation")


class _Progress:
    """One status line on stderr, redrawn in place on a terminal."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled
        self.redraw = enabled and sys.stderr.isatty()

    def show(self, epoch: int, stats: dict) -> None:
        if not self.enabled:
            return
        done = epoch + 1
        filled = int(20 * done / self.total)
        line = (f"epoch {done}/{self.total} [{'#' * filled}{'.' * (20 - filled)}] mean {stats['avg_fitness']:.4g} "
                f"max {stats['max_fitness']:.4g} | {stats['tokens_per_s']:,.0f} tok/s")
        print(("\r" + line) if self.redraw else line, end="" if self.redraw else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.redraw:
            print(file=sys.stderr)


def _atomic_save(obj, path: Path) -> None:
    partial = path.with_suffix(".tmp")
    torch.save(obj, partial)
    os.replace(partial, path)


def _flat_settings(settings: dict) -> dict:
    """``settings`` with the config's fields as ``config.<field>`` entries, so a mismatch names the field."""
    return {**{name: value for name, value in settings.items() if name != "config"},
            **{f"config.{name}": value for name, value in settings["config"].items()}}


def _resume(path: Path, settings: dict, device: torch.device):
    if not path.is_file():
        raise FileNotFoundError(f"--resume: {path} does not exist; run once without --resume to create it")
    saved = torch.load(path, map_location=device, weights_only=False)
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"--resume: {path} is not a checkpoint of this command ({CHECKPOINT_FORMAT})")
    ours, theirs = _flat_settings(settings), _flat_settings(saved["settings"])
    differing = sorted(name for name in ours.keys() | theirs.keys() if ours.get(name) != theirs.get(name))
    if differing:
        raise ValueError(f"--resume: {path} was written with other settings ({', '.join(differing)}); "
                         "rerun with the same ones or a new --out")
    return saved


def _open_logs(out: Path, start_epoch: int):
    """The CSV and JSON-lines logs, cut back to the epochs before ``start_epoch``."""
    rows = []
    jsonl = out / "log.jsonl"
    if start_epoch and jsonl.is_file():
        rows = [line for line in jsonl.read_text().splitlines() if line and json.loads(line)["epoch"] < start_epoch]
    jsonl.write_text("".join(line + "\n" for line in rows))
    with open(out / "log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(json.loads(line) for line in rows)


def _append_logs(out: Path, row: dict) -> None:
    with open(out / "log.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")
    with open(out / "log.csv", "a", newline="") as handle:
        csv.DictWriter(handle, LOG_FIELDS).writerow(row)


def run(args) -> dict:
    """Train as ``args`` (from :func:`build_parser`) says; returns the final checkpoint dict."""
    _check_args(args)
    config = _config(args)
    dist = _Distributed(config.parallel_generations, config.generations_per_prompt, args.device)
    MODEL, init = load_model(args.model, args.variant, getattr(torch, args.dtype), dist.device, args.seed)
    tokenizer = _tokenizer(args.tokenizer)
    task = _task(args, tokenizer, all_tasks)
    validation = _task(args, tokenizer, validation_tasks) if config.validate_every else None
    evolution = Evolution(MODEL, init, task, config, validation, members_per_call=args.members_per_call,
                          compile=args.compile, cuda_graph=args.cuda_graph)
    settings = _settings(args, config)
    out = None if args.out is None else Path(args.out)
    noiser_params, params, start = evolution.noiser_params, evolution.params, 0
    if args.resume:
        saved = _resume(out / "checkpoint.pt", settings, dist.device)
        noiser_params, params, start = saved["noiser_params"], saved["params"], saved["epoch"]
    writer = dist.rank == 0 and out is not None
    if writer:
        out.mkdir(parents=True, exist_ok=True)
        _open_logs(out, start)
    progress = _Progress(args.epochs, dist.rank == 0 and not args.no_progress)
    exchange = dist.exchange if dist.members is not None else None
    checkpoint = None
    for epoch in range(start, args.epochs):
        began = time.perf_counter()
        result = evolution.single_epoch(noiser_params, params, epoch, members=dist.members, exchange=exchange)
        noiser_params, params = result.noiser_params, result.params
        if dist.device.type == "cuda":
            torch.cuda.synchronize(dist.device)
        seconds = time.perf_counter() - began
        row = {"epoch": epoch, **{name: result.stats.get(name, math.nan) for name in LOG_FIELDS[1:-2]},
               "tokens_per_s": config.parallel_generations * config.generation_length / seconds, "seconds": seconds}
        progress.show(epoch, row)
        checkpoint = {"format": CHECKPOINT_FORMAT, "epoch": epoch + 1, "settings": settings, "params": params,
                      "noiser_params": noiser_params}
        if writer:
            _append_logs(out, row)
            if (epoch + 1) % args.save_every == 0 or epoch + 1 == args.epochs:
                _atomic_save(checkpoint, out / "checkpoint.pt")
    progress.close()
    return checkpoint


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"python -m eggroll_torch.llm {args.command}: {error}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0
