"""A generation of ``transformers`` GPT-2 and Llama models through ``EggrollTrainer.step``, against
the same model's pure batched inference in the same process.

Models are built from configs with random weights (no download). The fitness is the mean
log-likelihood of fixed tokens. Prints, per model: inference and generation milliseconds
(``trainer.step``, and on CUDA also ``trainer.graphed_step`` against inference replayed as a
CUDA graph), ``gen/inf`` (one inference of all ``N`` sequences over a generation's time), the
bound
``1 / (1 + r / (2T))`` and peak memory of a generation over inference.

Run: ``python -m benchmarks.hf_generation [--device cuda] [--dtype bfloat16]``.
"""
from __future__ import annotations

import argparse
import json

import torch

from eggroll_torch.examples.hf_language_models import CausalLMLogits, cycling_tokens, mean_log_likelihood
from eggroll_torch.nn import EggrollTrainer
from .measure import cuda_sync, no_sync, time_call


def _model(name: str, width: int, layers: int, vocab: int) -> CausalLMLogits:
    import transformers

    torch.manual_seed(0)
    if name == "gpt2":
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=width, n_layer=layers, n_head=width // 64,
                                         n_positions=1024, bos_token_id=0, eos_token_id=0)
        return CausalLMLogits(transformers.GPT2LMHeadModel(config).eval())
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=4 * width,
                                      num_hidden_layers=layers, num_attention_heads=width // 64,
                                      num_key_value_heads=max(1, width // 128), max_position_embeddings=1024,
                                      bos_token_id=0, eos_token_id=0)
    return CausalLMLogits(transformers.LlamaForCausalLM(config).eval())


def measure(name: str, *, device: str, dtype: torch.dtype, width: int, layers: int, tokens: int,
            population: int, rank: int, vocab: int) -> dict:
    model = _model(name, width, layers, vocab).to(device=device, dtype=dtype)
    sequence = cycling_tokens(tokens).to(device)
    trainer = EggrollTrainer(model, 0.01, 0.01, population_size=population, rank=rank, seed=0)

    def inference():
        with torch.no_grad():
            logits = model(sequence.expand(population, -1))
            return mean_log_likelihood(logits[:, None], sequence)

    def fitness(pop):
        return mean_log_likelihood(pop(sequence, in_dims=None), sequence)

    def generation():
        return trainer.step(fitness)

    peaks = {}
    for label, call in (("inference", inference), ("generation", generation)):
        call()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            call()
            torch.cuda.synchronize()
            peaks[label] = torch.cuda.max_memory_allocated()
    sync = cuda_sync if device == "cuda" else no_sync
    inference_s = time_call(inference, sync, target_s=2.0)["time_s"]
    generation_s = time_call(generation, sync, target_s=2.0)["time_s"]
    graphed_s = graphed_inference_s = None
    if device == "cuda":
        graphed = trainer.graphed_step(fitness)
        graphed_s = time_call(graphed, sync, target_s=2.0)["time_s"]
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            inference()
        torch.cuda.current_stream().wait_stream(stream)
        with torch.cuda.graph(graph):
            inference()
        graphed_inference_s = time_call(graph.replay, sync, target_s=2.0)["time_s"]
    row = {
        "model": name, "width": width, "layers": layers, "tokens": tokens, "population": population,
        "rank": rank, "dtype": str(dtype), "device": device,
        "inference_ms": 1e3 * inference_s, "generation_ms": 1e3 * generation_s,
        "gen_over_inf": inference_s / generation_s, "bound": 1 / (1 + rank / (2 * tokens)),
    }
    if graphed_s is not None:
        row.update(graphed_inference_ms=1e3 * graphed_inference_s, graphed_generation_ms=1e3 * graphed_s,
                   graphed_gen_over_inf=graphed_inference_s / graphed_s)
    if peaks:
        row["peak_ratio"] = peaks["generation"] / peaks["inference"]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=50257)
    args = parser.parse_args(argv)
    for name in ("gpt2", "llama"):
        row = measure(name, device=args.device, dtype=getattr(torch, args.dtype), width=args.width,
                      layers=args.layers, tokens=args.tokens, population=args.population, rank=args.rank,
                      vocab=args.vocab)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
