"""The shared EvolutionConfig: one class for both packages, and noiser names both accept."""
import eggroll_torch.llm as tl
import eggroll_torch.noiser as torch_noisers
import jax_reference.llm as jl
import jax_reference.noiser as jax_noisers
from eggroll_torch.llm.config import NOISER_NAMES


def test_one_config_class_serves_both_packages():
    assert jl.EvolutionConfig is tl.EvolutionConfig


def test_noiser_names_are_both_registries():
    assert sorted(NOISER_NAMES) == sorted(torch_noisers.all_noisers) == sorted(jax_noisers.all_noisers)


def test_prompts_per_epoch():
    assert tl.EvolutionConfig(parallel_generations=64, generations_per_prompt=8).prompts_per_epoch == 8
