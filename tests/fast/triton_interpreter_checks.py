"""Run by test_fast_triton_kernels.py in a fresh process with ``TRITON_INTERPRET=1``: checks every
Triton kernel of eggroll_torch.fast (and the population LayerNorm of eggroll_torch.nn) on CPU tensors
and prints one JSON object ``{check: {"ok": bool, "detail": str}}``.

Triton reads the switch when a kernel module is first imported, so the checks cannot share a
process with code that has imported the kernels for a GPU.
"""
from __future__ import annotations

import json
import os
import sys

import torch

from conformance.tolerances import compare
from eggroll_torch import random as es_random
from eggroll_torch.fast import draw_pair_normals, pair_keys

WORD = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float16: torch.int16}


def check_normals(results):
    keys = es_random.split(es_random.key(3), 2)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        for noise_reuse in (0, 2):
            expected = es_random.normal(pair_keys(keys, 5, 3, noise_reuse), (19, 3), dtype)
            for layout, out in (("row_major", torch.empty(2, 3, 19, 3, dtype=dtype)),
                                ("col_major", torch.empty(2, 3, 3, 19, dtype=dtype).transpose(2, 3))):
                draw_pair_normals(keys, torch.tensor([5], dtype=torch.int32), out, noise_reuse=noise_reuse,
                                  kernel="triton")
                same = torch.equal(out.contiguous().view(WORD[dtype]), expected.view(WORD[dtype]))
                results[f"normals_{str(dtype)[6:]}_reuse{noise_reuse}_{layout}"] = {
                    "ok": same, "detail": "bit-identical" if same else "bits differ"}
            # The split the pair engine draws: rows below 7 as drawn, the rest scaled and rounded.
            head = torch.empty(2, 3, 3, 7, dtype=dtype).transpose(2, 3)
            scaled = torch.empty(2, 3, 3, 12, dtype=dtype).transpose(2, 3)
            draw_pair_normals(keys, torch.tensor([5], dtype=torch.int32), head,
                              noise_reuse=noise_reuse, kernel="triton", scaled=(scaled, 7, 0.1015625))
            want = expected[:, :, 7:] * torch.full((), 0.1015625, dtype=dtype)
            same = (torch.equal(scaled.contiguous().view(WORD[dtype]), want.view(WORD[dtype]))
                    and torch.equal(head.contiguous().view(WORD[dtype]), expected[:, :, :7].view(WORD[dtype])))
            results[f"normals_scaled_{str(dtype)[6:]}_reuse{noise_reuse}"] = {
                "ok": same, "detail": "bit-identical" if same else "bits differ"}


def check_rows(results):
    """eggroll_torch.random's rows kernel (float32 from its table under the interpreter)."""
    from eggroll_torch.random.triton_normal import normal_rows

    keys = es_random.split(es_random.key(9), 3)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        expected = es_random.normal(keys, (1100,), dtype)
        out = torch.empty(3, 1100, dtype=dtype)
        normal_rows(keys, out, variant="cpu")
        same = torch.equal(out.view(WORD[dtype]), expected.view(WORD[dtype]))
        results[f"rows_{str(dtype)[6:]}"] = {"ok": same, "detail": "bit-identical" if same else "bits differ"}


def check_member_layer_norm(results):
    """eggroll_torch.nn's population LayerNorm: each member's rows with its own weight and bias."""
    import torch.nn.functional as F

    from eggroll_torch.nn.member_kernels import member_layer_norm_rows

    gen = torch.Generator().manual_seed(0)
    members, rows, width = 6, 5, 40
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        x, weight, bias = (torch.randn(shape, generator=gen).to(dtype)
                           for shape in ((members * rows, width), width, width))
        weight_noise, bias_noise = ((0.1 * torch.randn(members // 2, width, generator=gen)).to(dtype) for _ in range(2))
        for label, args in (("noisy", (weight, weight_noise, bias, bias_noise)),
                            ("shared_bias", (None, None, bias, None))):
            got = member_layer_norm_rows(x, rows, *args, 1e-5)
            want = []
            for m in range(members):
                sign = 1 if m % 2 == 0 else -1
                w = None if args[0] is None else args[0] + sign * args[1][m // 2]
                b = args[2] if args[3] is None else args[2] + sign * args[3][m // 2]
                want.append(F.layer_norm(x[m * rows:(m + 1) * rows], (width,), w, b, 1e-5))
            outcome = compare(got, torch.cat(want), "reduction")
            results[f"member_ln_{str(dtype)[6:]}_{label}"] = {"ok": outcome.ok, "detail": outcome.message()}


def main() -> int:
    if os.environ.get("TRITON_INTERPRET") != "1":
        print(json.dumps({"setup": {"ok": False, "detail": "TRITON_INTERPRET=1 is not set"}}))
        return 1
    results = {}
    check_normals(results)
    check_rows(results)
    check_member_layer_norm(results)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
