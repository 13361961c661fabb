"""Activation memory of one full-size transformer call and one VAE decode, Wan 2.1 1.3B and CogVideoX-2B, CPU. Notebook 07.

    .venv/bin/python benchmarks/transformer_memory.py

Each measurement runs in its own fresh process: it builds one part on the meta device from
its real config (its family's memory profile), gives it random weights in place (full_size.py), makes random
inputs of a small latent size, and records the RSS (resident set size) after that and the
peak RSS (VmHWM) during one call. Peak minus RSS before the call is the activation memory,
from which t2v_helpers.memory.calibrate_profile derives the coefficients of each family's
memory profile. Two sizes per part separate what grows with the size from what is fixed.

Each process runs with MALLOC_MMAP_THRESHOLD_=65536: glibc then gives every freed buffer of
64 KiB or more back to the system at once, so the peak RSS follows the tensors alive at each
moment (by default glibc raises that threshold as it goes and keeps freed buffers of up to
32 MiB in its heap, which makes the peak grow with every chunk a VAE decodes).

These are CPU figures: CUDA kernels keep different temporary buffers (and diffusers picks
other attention kernels there), so the predictions built on them keep a margin. Sizes are
small so that the whole set fits in minutes on 2 shared cores. Writes
benchmarks/results/cpu-transformer-memory.json (a free name if it exists).
"""

import json
import os
import subprocess
import sys
import time
from datetime import date

# (family, part, dtype, latent frames, latent height, latent width): the transformers at two token
# counts in bfloat16, the VAEs at two frame counts in the dtype they run in (Wan's VAE stays float32).
RUNS = [
    ("wan", "transformer", "bfloat16", 3, 30, 52),
    ("wan", "transformer", "bfloat16", 6, 30, 52),
    ("cogvideox", "transformer", "bfloat16", 3, 30, 44),
    ("cogvideox", "transformer", "bfloat16", 6, 30, 44),
    ("wan", "vae", "float32", 2, 20, 30),
    ("wan", "vae", "float32", 4, 20, 30),
    ("cogvideox", "vae", "bfloat16", 3, 20, 30),
    ("cogvideox", "vae", "bfloat16", 5, 20, 30),
]
ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}  # see the module docstring
TEXT_TOKENS = {"wan": 512, "cogvideox": 226}  # prompt embeddings each pipeline passes


def child(family, part, dtype, frames, height, width):
    import torch

    from t2v_helpers.memory import profile_of

    from bench import reset_peak_rss, rss_bytes
    from full_size import materialize

    dtype = getattr(torch, dtype)
    start = time.perf_counter()
    with torch.device("meta"):
        module = profile_of(family).parts()[part]
    module = materialize(module, dtype)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 16, frames, height, width, generator=generator).to(dtype)
    if part == "transformer":
        text = torch.randn(1, TEXT_TOKENS[family], 4096, generator=generator).to(dtype)
        if family == "cogvideox":  # CogVideoX takes (batch, frames, channels, height, width)
            inputs = dict(hidden_states=latents.transpose(1, 2).contiguous(), encoder_hidden_states=text, timestep=torch.tensor([999]))
        else:
            inputs = dict(hidden_states=latents, encoder_hidden_states=text, timestep=torch.tensor([999]))
        call = lambda: module(**inputs, return_dict=False)  # noqa: E731
    else:
        call = lambda: module.decode(latents, return_dict=False)  # noqa: E731
    result = dict(
        family=family, part=part, dtype=str(dtype)[6:], latent_frames=frames, latent_height=height, latent_width=width,
        parameters=sum(p.numel() for p in module.parameters()), load_s=time.perf_counter() - start, rss_before_call=rss_bytes("VmRSS"),
    )
    reset_peak_rss()
    start = time.perf_counter()
    with torch.inference_mode():
        out = call()[0]
    result.update(call_s=time.perf_counter() - start, peak_rss_call=rss_bytes("VmHWM"), output_shape=list(out.shape))
    result["activation_bytes"] = result["peak_rss_call"] - result["rss_before_call"]
    return result


def main():
    from bench import machine, save_results

    runs = []
    for spec in RUNS:
        command = [sys.executable, __file__, "--child", json.dumps(spec)]
        load_before = os.getloadavg()[0]
        done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, **ENV))
        if done.returncode != 0:
            runs.append(dict(spec=spec, error=(done.stderr.strip().splitlines() or ["no output"])[-1], load_before=load_before))
            print(spec, "failed:", runs[-1]["error"], flush=True)
            continue
        runs.append(dict(json.loads(done.stdout.strip().splitlines()[-1]), command=" ".join(command), load_before=load_before, load_after=os.getloadavg()[0]))
        r = runs[-1]
        print(
            f"{r['family']} {r['part']} {r['dtype']}, latents {r['latent_frames']}x{r['latent_height']}x{r['latent_width']}: "
            f"RSS {r['rss_before_call'] / 2**30:.2f} GiB before the call, peak {r['peak_rss_call'] / 2**30:.2f} GiB, "
            f"activations {r['activation_bytes'] / 2**30:.3f} GiB, {r['call_s']:.1f} s; load average {load_before:.2f} -> {r['load_after']:.2f}",
            flush=True,
        )
    results = dict(
        title="Activation memory of one full-size transformer call and one VAE decode (Wan 2.1 1.3B, CogVideoX-2B), CPU",
        date=date.today().isoformat(),
        machine=machine(),
        notes=[
            "CPU figures: CUDA kernels keep different temporary buffers, so t2v_helpers.memory keeps a margin on top of what these give.",
            "Random weights of the real shapes (each family's profile builds its parts; full_size.py fills them); one call per fresh process; batch 1; "
            "activation_bytes = peak RSS during the call (VmHWM, reset just before) - RSS before it.",
            "Transformers: prompt embeddings of the length each pipeline passes (Wan 512 tokens, CogVideoX 226). "
            "VAEs: one decode of the whole latent video, Wan's in float32 as its pipeline keeps it.",
            "Each process ran with MALLOC_MMAP_THRESHOLD_=65536, so glibc returns freed buffers of 64 KiB and more at once "
            "and the peak RSS follows the live tensors (see the script's docstring).",
            "Load average is the 1-minute load of the machine, shared with other jobs (2 cores).",
        ],
        command=" ".join([sys.executable, *sys.argv]),
        environment=ENV,
        runs=runs,
    )
    print("wrote", save_results(results, "cpu-transformer-memory"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(*json.loads(sys.argv[2]))))
    else:
        main()
