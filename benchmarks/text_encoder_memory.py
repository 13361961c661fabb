"""RAM needed to hold and run each full-size text encoder: UMT5-XXL (Wan 2.1) and T5-XXL (CogVideoX). Notebook 07.

    .venv/bin/python benchmarks/text_encoder_memory.py [umt5-xxl] [t5-xxl]

Each encoder runs in its own fresh process, one after the other, never both at once. The
process builds the encoder on the meta device (shapes only) from its family's config,
gives it random bfloat16 weights in place (no float32 copy, full_size.py), encodes one prompt padded to the length its pipeline
uses (512 tokens for Wan, 226 for CogVideoX), puts it in its diffusers pipeline (the
other parts left out) and frees it there with t2v_helpers.text_encoding.free_text_encoder,
the step `encode_then_free` ends with. It records the peak RSS (resident set size: the RAM
the process holds, VmHWM) after loading, the peak while encoding, and the RSS after freeing. Loading real weights from safetensors files adds
what the file reader holds at its peak; these figures are the floor. Before each run it
waits until the machine has enough RAM available (other jobs share it) and records the
load average. Writes benchmarks/results/cpu-text-encoder-memory.json (a free name if it exists).
"""

import json
import os
import subprocess
import sys
import time
from datetime import date

ENCODERS = {"umt5-xxl": "wan", "t5-xxl": "cogvideox"}  # encoder: the family whose text encoder it is
DTYPE = "bfloat16"
PROMPT_TOKENS = 16  # a short prompt's real tokens; the rest is padding the mask hides


def available_bytes():
    with open("/proc/meminfo") as info:
        return next(int(line.split()[1]) * 1024 for line in info if line.startswith("MemAvailable:"))


def child(name):
    import inspect

    import diffusers
    import torch

    from t2v_helpers.families import family_named
    from t2v_helpers.memory import profile_of
    from t2v_helpers.text_encoding import free_text_encoder

    from bench import reset_peak_rss, rss_bytes
    from full_size import materialize

    family = family_named(ENCODERS[name])
    tokens = family.max_tokens  # the length its pipeline pads every prompt to
    result = dict(encoder=name, dtype=DTYPE, prompt_tokens=tokens, rss_before_load=rss_bytes("VmRSS"))
    start = time.perf_counter()
    with torch.device("meta"):
        encoder = profile_of(family).parts()["text_encoder"]
    encoder = materialize(encoder, getattr(torch, DTYPE))
    result.update(
        load_s=time.perf_counter() - start,
        parameters=sum(p.numel() for p in encoder.parameters()),
        rss_after_load=rss_bytes("VmRSS"),
        peak_rss_load=rss_bytes("VmHWM"),
    )
    reset_peak_rss()
    ids = torch.randint(0, encoder.config.vocab_size, (1, tokens), generator=torch.Generator().manual_seed(0))
    mask = (torch.arange(tokens) < PROMPT_TOKENS).long()[None]
    start = time.perf_counter()
    with torch.inference_mode():
        embeddings = encoder(ids, mask).last_hidden_state
    result.update(encode_s=time.perf_counter() - start, embeddings_shape=list(embeddings.shape), peak_rss_encode=rss_bytes("VmHWM"))
    pipeline = getattr(diffusers, family.pipeline)
    others = [n for n in inspect.signature(pipeline.__init__).parameters if n not in ("self", "text_encoder")]
    pipe = pipeline(text_encoder=encoder, **dict.fromkeys(others))
    del encoder  # the pipeline holds the only reference, as after loading
    result["rss_before_free"] = rss_bytes("VmRSS")
    free_text_encoder(pipe)
    result["rss_after_free"] = rss_bytes("VmRSS")
    return result


def run(name):
    needed = 13 * 2**30 if name == "umt5-xxl" else 11 * 2**30
    waited = 0
    while available_bytes() < needed and waited < 600:
        print(f"{name}: {available_bytes() / 2**30:.1f} GiB available, waiting for {needed / 2**30:.0f} GiB", flush=True)
        time.sleep(30)
        waited += 30
    before = dict(load_before=os.getloadavg()[0], available_before=available_bytes(), waited_s=waited)
    command = [sys.executable, __file__, "--child", name]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return dict(encoder=name, error=(done.stderr.strip().splitlines() or ["no output"])[-1], command=" ".join(command), **before)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), command=" ".join(command), load_after=os.getloadavg()[0], **before)


def main(names):
    from bench import machine, save_results

    runs = []
    for name in names:
        runs.append(run(name))
        r = runs[-1]
        if "error" in r:
            print(f"{name}: failed: {r['error']}")
            continue
        gib = lambda key: r[key] / 2**30  # noqa: E731
        print(
            f"{name} ({r['parameters'] / 1e9:.2f} billion parameters, {r['dtype']}): RSS {gib('rss_before_load'):.2f} GiB before, "
            f"{gib('rss_after_load'):.2f} GiB after loading (peak {gib('peak_rss_load'):.2f}), peak {gib('peak_rss_encode'):.2f} GiB "
            f"encoding {r['prompt_tokens']} tokens ({r['encode_s']:.1f} s), {gib('rss_before_free'):.2f} GiB in its pipeline, "
            f"{gib('rss_after_free'):.2f} GiB after free_text_encoder; "
            f"load average {r['load_before']:.2f} -> {r['load_after']:.2f}"
        )
    results = dict(
        title="RAM of the full-size text encoders of Wan 2.1 (UMT5-XXL) and CogVideoX (T5-XXL), CPU",
        date=date.today().isoformat(),
        machine=machine(),
        notes=[
            "Random weights of the real shapes (the family's config), built on the meta device and filled in place in bfloat16: "
            "no float32 copy and no file reader, so loading real weights can peak higher than 'peak_rss_load'.",
            "One encoder per fresh process, one after the other. RSS = resident set size (VmRSS); peaks are VmHWM, reset after loading.",
            "'rss_before_free' / 'rss_after_free': the process's RSS with the encoder in its pipeline, and after "
            "t2v_helpers.text_encoding.free_text_encoder(pipe): what encode_then_free gives back.",
            "Load average is the 1-minute load of the machine, shared with other jobs (2 cores).",
        ],
        command=" ".join([sys.executable, *sys.argv]),
        runs=runs,
    )
    print("wrote", save_results(results, "cpu-text-encoder-memory"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
    else:
        main(sys.argv[1:] or list(ENCODERS))
