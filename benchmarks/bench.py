"""Measure time and memory of the pipeline per setting: `python benchmarks/bench.py --set tiny|full|fast-tiny|fast-full`.

Each setting runs in a fresh Python process, so one setting's memory never counts
against the next. It writes `<device>-<set>.json` and `.md` into the output folder
(default benchmarks/results/) and never replaces a results file: a re-run
gets a free name (`cpu-tiny-2.json`), which you rename over the old one after checking it.
Full-size runs take 1 denoising step on the CPU and
extrapolate to 25 steps; the tables say so. Notebooks 07 and 08 read the committed results
with `t2v.measured` (pyproject.toml ships benchmarks/results/ in the wheel as t2v_helpers/results/).
The other scripts here import `machine`, `save_results`, `load_average`, `rss_bytes` and
`reset_peak_rss` from this file (run as `python benchmarks/<script>.py`, this folder is on sys.path).
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

import t2v_helpers as t2v
from t2v_helpers import fast
from t2v_helpers.families.modelscope import build_full_size_pipeline
from t2v_helpers.compare import count_unet_calls
from t2v_helpers.environment import gpu_info, library_versions
from t2v_helpers.errors import SettingError
from t2v_helpers.families import family_named, family_of, find_model, models
from t2v_helpers.measured import REAL_STEPS, markdown, markdown_fast
from t2v_helpers.pipeline import place
from t2v_helpers.publish import json_text, publish
from t2v_helpers.schedulers import set_scheduler

OUT_DIR = Path(__file__).resolve().parent / "results"  # the committed results, which the wheel ships too
PROMPT = "An astronaut riding a horse on the moon"


def _frames_from(family, count):
    """The fewest frames of the family's form from `count` up: 16 stays 16 for ModelScope, 17 for Wan (4k+1)."""
    step = family.frame_step
    return (count - 1 + step - 1) // step * step + 1


def _family(model):
    return family_named(find_model(model).family)


def _tiny_configs(device, model="tiny"):
    family = _family(model)
    dtypes = ["float16"] if device == "cuda" else ["float32", "bfloat16"]
    offloads = ["none", "model", "sequential"] if device == "cuda" else ["none"]
    return [
        dict(model=model, device=device, dtype=dtype, offload=offload, vae_slicing=slicing, frames=_frames_from(family, frames), size=64, steps=3)
        for dtype in dtypes
        for offload in offloads
        for slicing in (True, False)
        for frames in (16, 64)
    ]


def _full_configs(device):
    if device == "cuda":
        return [
            dict(model="full", device="cuda", dtype="float16", offload=offload, vae_slicing=slicing, frames=frames, size=256, steps=3)
            for offload in ("none", "model", "sequential")
            for slicing in (True, False)
            for frames in (16, 64)
        ]
    # On 2 CPU cores one float32 step at 16 frames takes minutes and 64 frames four times
    # that, so the CPU set is 16 frames and 1 step: it must finish within 15 minutes.
    base = dict(model="full", device="cpu", offload="none", frames=16, size=256, steps=1)
    return [
        dict(base, dtype="float32", vae_slicing=True),
        dict(base, dtype="float32", vae_slicing=False),
        dict(base, dtype="bfloat16", vae_slicing=True),
    ]


def _fast_configs(device, model):
    """DPM-25 with guidance against LCM-4 without, each with and without torch.compile. Notebook 08."""
    if model == "tiny":
        base = dict(model="tiny", device=device, dtype="float16" if device == "cuda" else "float32", frames=4, size=64)
    elif device == "cuda":
        base = dict(model="full", device="cuda", dtype="float16", frames=16, size=256)
    else:
        # On 2 shared CPU cores: bfloat16 and 4 frames, 1 timed step of each (after the warm-up call), extrapolated.
        base = dict(model="full", device="cpu", dtype="bfloat16", frames=4, size=256)
    run_steps = (3, 4) if device == "cuda" or model == "tiny" else (1, 1)
    base.update(offload="none", vae_slicing=True)
    return [
        dict(base, scheduler=name, fast=name == "lcm", guidance=guidance, steps=steps, video_steps=video_steps, compile=compiled)
        for compiled in (False, True)  # uncompiled first: if time runs out, the comparison of schedulers is complete
        for name, guidance, steps, video_steps in (("dpm", 9.0, run_steps[0], REAL_STEPS), ("lcm", 1.0, run_steps[1], 4))
    ]


SETS = {
    "tiny": _tiny_configs,
    "full": _full_configs,
    "fast-tiny": lambda device: _fast_configs(device, "tiny"),
    "fast-full": lambda device: _fast_configs(device, "full"),
}


def _prepare_fast(pipe, config):
    """Set the scheduler (and, for LCM, the MCM LoRA), compile if asked. Notebook 08.

    The full-size model has random weights and no LoRA to merge: a merged UNet has the
    same layers as the plain one, so it only gets the LCM scheduler.
    """
    if config.get("fast") and _tiny(config):
        pipe.t2v_model_id = config["model"]
        fast.make_fast(pipe, verbose=False)
    else:
        set_scheduler(pipe, config["scheduler"])
    if config.get("compile"):
        fast.compile_unet(pipe)


def rss_bytes(field):
    """VmRSS or VmHWM (the peak) of this process, from /proc; None where there is no /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return int(re.search(rf"{field}:\s+(\d+) kB", text).group(1)) * 1024


def reset_peak_rss():
    """Reset VmHWM, so that each phase gets its own peak; False where that is not possible."""
    # Writing 5 to clear_refs resets VmHWM (Linux 4.0+).
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _tiny(config):
    """Whether the config names a tiny model ('tiny', 'tiny-wan', ...); 'full' is ModelScope's full-size architecture."""
    model = find_model(config["model"])
    return model is not None and model.tiny


def _load(config):
    dtype = getattr(torch, config["dtype"])
    if _tiny(config):
        return t2v.load_pipeline(config["model"], offload=config["offload"], dtype=dtype, vae_slicing=config["vae_slicing"], verbose=False)
    return place(build_full_size_pipeline(dtype), config["offload"], config["device"], config["vae_slicing"])


def _loaded(config):
    """The pipeline of `config`, ready to measure, and the result so far: load time and memory after loading."""
    load_start = time.perf_counter()
    pipe = _load(config)
    if "scheduler" in config:
        _prepare_fast(pipe, config)
    result = dict(config, load_s=time.perf_counter() - load_start, rss_after_load=rss_bytes("VmRSS"))
    if config["device"] == "cuda":
        torch.cuda.synchronize()
        result["cuda_allocated_after_load"] = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    result["peak_reset"] = reset_peak_rss()
    return pipe, result


def _time_decoding(pipe, cuda):
    """Wrap the VAE's decode so that each call's seconds land in the returned list."""
    decode, times = pipe.vae.decode, []

    def timed_decode(*args, **kwargs):
        start = time.perf_counter()
        out = decode(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        return out

    pipe.vae.decode = timed_decode
    return times


def _step_recorder(config, result, step_ends):
    """A step callback that records when each step ends and, after the last, denoising's peak memory."""
    cuda = config["device"] == "cuda"

    def callback(latents):
        if cuda:
            torch.cuda.synchronize()
        step_ends.append(time.perf_counter())
        if len(step_ends) == config["steps"]:
            # Denoising is over: keep its peak, then measure decoding's on its own.
            result["peak_rss_denoise"] = rss_bytes("VmHWM")
            if cuda:
                result["cuda_max_allocated_denoise"] = torch.cuda.max_memory_allocated()
                result["cuda_max_reserved_denoise"] = torch.cuda.max_memory_reserved()
                torch.cuda.reset_peak_memory_stats()
            reset_peak_rss()

    return callback


def _call(pipe, config, steps, output_type, callback=None):
    family = family_of(pipe)
    pipe(
        PROMPT,
        num_inference_steps=steps,
        num_frames=config["frames"],
        height=config["size"],
        width=config["size"],
        guidance_scale=config.get("guidance", family.guidance),
        generator=torch.Generator("cpu").manual_seed(0),
        output_type=output_type,
        **(family.on_step(callback) if callback else {}),
        **family.pipeline_kwargs,
    )


def _add_times(result, config, start, end, step_ends, decode_times):
    """Seconds per step, decode and video (extrapolated to the steps a video takes) from the recorded times."""
    steps = [b - a for a, b in zip([start] + step_ends, step_ends)]
    # The first step also encodes the prompt and pays one-off costs: later steps are the rate.
    result["step_s"] = statistics.median(steps[1:]) if len(steps) > 1 else steps[0]
    result["per_step_from"] = "median of steps 2.." if len(steps) > 1 else "the only step, prompt encoding included (an upper bound)"
    result["first_step_s"] = steps[0]
    result["decode_s"] = sum(decode_times)
    result["end_to_end_s"] = end - start
    extra = end - start - sum(steps) - result["decode_s"]
    result[f"estimated_{REAL_STEPS}_steps_s"] = steps[0] + result["step_s"] * (REAL_STEPS - 1) + result["decode_s"] + extra
    video_steps = config.get("video_steps", REAL_STEPS)
    result["estimated_video_s"] = steps[0] + result["step_s"] * (video_steps - 1) + result["decode_s"] + extra
    # One evaluation = one row of the UNet's batch: with guidance, each call evaluates prompt and negative prompt.
    result["unet_evaluations_per_video"] = result["unet_calls"] // config["steps"] * video_steps * result["unet_batch"]


def measure(config):
    """Time and peak memory of one pipeline call with `config`, in this process. Notebook 07."""
    cuda = config["device"] == "cuda"
    pipe, result = _loaded(config)
    step_ends = []
    decode_times = _time_decoding(pipe, cuda)
    # The counter's hook goes on before any compiled call: a hook added later would recompile.
    with count_unet_calls(pipe) as counter, torch.inference_mode():
        if "scheduler" in config:
            # One step, no decoding: the first call's cost (torch.compile compiles here).
            first = time.perf_counter()
            _call(pipe, config, 1, "latent")
            if cuda:
                torch.cuda.synchronize()
            result["first_call_s"] = time.perf_counter() - first
            counter.calls = 0
        start = time.perf_counter()
        _call(pipe, config, config["steps"], "np", _step_recorder(config, result, step_ends))
    result["unet_calls"], result["unet_batch"] = counter.calls, counter.batch
    if cuda:
        torch.cuda.synchronize()
    end = time.perf_counter()
    result["peak_rss_decode"] = rss_bytes("VmHWM")
    if cuda:
        result["cuda_max_allocated_decode"] = torch.cuda.max_memory_allocated()
        result["cuda_max_reserved_decode"] = torch.cuda.max_memory_reserved()
    _add_times(result, config, start, end, step_ends, decode_times)
    return result


def overhead(rounds=7, frames=8, size=32, steps=2, model="tiny"):
    """Time of t2v.generate over a raw `pipe(...)` call on identical settings, from interleaved runs. Notebook 07.

    Runs on a tiny pipeline (`model`), where any overhead shows most. Returns the median ratio
    and the times of both.
    """
    pipe = t2v.load_pipeline(model, verbose=False)
    family = family_of(pipe)
    frames = _frames_from(family, frames)
    pipe.set_progress_bar_config(disable=True)
    pipe.t2v_cpu_notice_shown = True  # the one-off CPU notice adds a callback; keep both calls alike

    def raw():
        pipe(
            PROMPT,
            num_inference_steps=steps,
            num_frames=frames,
            height=size,
            width=size,
            guidance_scale=family.guidance,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="np",
            **family.pipeline_kwargs,
        )

    def helper():
        t2v.generate(pipe, PROMPT, steps=steps, frames=frames, height=size, width=size, guidance=family.guidance, seed=0)

    raw(), helper()  # warm-up
    times = {"raw": [], "helper": []}
    for i in range(rounds):
        # Alternate the order too, so a slow moment on a shared machine hits both sides.
        order = [("raw", raw), ("helper", helper)] if i % 2 == 0 else [("helper", helper), ("raw", raw)]
        for name, call in order:
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    ratios = [h / r for h, r in zip(times["helper"], times["raw"])]
    return dict(
        model=model, frames=frames, size=size, steps=steps, rounds=rounds,
        ratio_median=statistics.median(ratios), raw_s=times["raw"], helper_s=times["helper"],
    )


def load_average():
    """The machine's 1-minute load average, or None where the system does not say."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _run_in_child(config, timeout):
    load_before = load_average()
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)]
    # The child measures the t2v_helpers this process imported, not another copy Python might find first.
    package_parent = str(Path(t2v.__file__).resolve().parents[1])
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONPATH=os.pathsep.join(filter(None, [package_parent, os.environ.get("PYTHONPATH")])))
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(config, error=f"took longer than {timeout} s", load_before=load_before, load_after=load_average())
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return dict(config, error=error, load_before=load_before, load_after=load_average())
    return dict(json.loads(lines[-1]), load_before=load_before, load_after=load_average())


def machine():
    """What the measurements ran on: CPU, cores, memory, GPU and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        names = re.findall(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = names[0].strip() if names else cpu
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        memory_gib=round(memory / 2**30, 1) if memory else None,
        gpu=gpu_info(),
        versions=library_versions(),
    )


def _notes(which, device):
    """What a reader of the results needs to know about how the set `which` ran on `device`."""
    notes = [
        "Each setting ran in a fresh Python process; peak RSS is that process's VmHWM, reset after loading "
        "and again after denoising, so the two peaks are separate.",
        f"'est. {REAL_STEPS} steps' = first step + {REAL_STEPS - 1} x s per step + VAE decode: extrapolated, not run.",
        "Load average is the 1-minute load of the machine, which other jobs shared; above the core count, times are inflated.",
    ]
    if which.startswith("fast"):
        notes[1] = ("'s per video' = first step + (steps per video - 1) x s per step + VAE decode: extrapolated where "
                    "fewer steps ran than a video takes (25 for DPM, 4 for LCM). 'first call s' is one unrecorded 1-step call before "
                    "the timed one, without decoding: with torch.compile it includes the compilation.")
        notes.append("UNet evaluations per video = UNet calls per video x rows per call (2 with guidance: prompt and negative prompt).")
    if which.endswith("full"):
        notes.insert(0, "Full-size = the real architecture of ali-vilab/text-to-video-ms-1.7b with random weights "
                        "(t2v_helpers.families.modelscope); time and memory depend on shapes, not weight values.")
    if device == "cpu":
        notes.append("No GPU was available for this run, so there is no CUDA set here: offload modes need a GPU.")
        if which == "fast-full":
            notes.append("CPU set cut to bfloat16, 4 frames and 1 timed step per setting (after the untimed warm-up call), "
                         "so that it fits in about half an hour on 2 cores shared with other jobs; a setting that takes longer than the timeout is reported as failed. The full-size model has random weights and no LoRA: the LCM "
                         "runs use the LCM scheduler on the plain UNet, whose layers and cost equal the merged one's.")
        elif which == "full":
            notes.append("CPU set cut to 16 frames and 1 step: one float32 step takes minutes on 2 cores, so 64 frames "
                         "(4x longer) and more steps would not fit in 15 minutes. With 1 step, 's per step' includes "
                         "prompt encoding and warm-up, so it is an upper bound.")
    return notes


def run(which="tiny", out_dir=OUT_DIR, device=None, configs=None, timeout=900, with_overhead=True, model="tiny"):
    """Run a benchmark set ('tiny' or 'full'), each setting in its own process; write JSON and Markdown.

    The tiny set measures the tiny `model` ('tiny', or another family's: 'tiny-wan', ...), written
    as `<device>-tiny` for ModelScope's and `<device>-<model>` for the others.
    Returns the results dict and the paths written. An existing results file (or link) is
    never replaced or written through: the new one gets a free name (-2, -3, ...).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if which not in SETS:
        raise SettingError("which", which, "is not a benchmark set", "'tiny' or 'full', or 'fast-tiny' or 'fast-full' (notebook 08)", "which='tiny'")
    configs = configs or (_tiny_configs(device, model) if which == "tiny" else SETS[which](device))
    stem = f"{device}-{which}" if model == "tiny" or which != "tiny" else f"{device}-{model}"
    started = time.perf_counter()
    runs = []
    for config in configs:
        runs.append(_run_in_child(config, timeout))
        print(json.dumps({k: runs[-1].get(k) for k in ("model", "dtype", "offload", "vae_slicing", "frames", "step_s", "decode_s", "error")}), flush=True)
    results = dict(
        title=f"Benchmark: {which} pipeline on {device}" + ("" if model == "tiny" else f" ({model})"),
        date=time.strftime("%Y-%m-%d"),
        machine=machine(),
        notes=_notes(which, device),
        runs=runs,
        overhead=overhead(model=model) if with_overhead and not which.startswith("fast") else None,
        attention=_run_in_child(dict(configs[0], attention=True), timeout) if which.startswith("fast") and configs else None,
        total_s=time.perf_counter() - started,
    )
    paths = publish(out_dir, stem, {
        ".json": lambda path: Path(path).write_text(json_text(results), encoding="utf-8"),
        ".md": lambda path: Path(path).write_text((markdown_fast if which.startswith("fast") else markdown)(results), encoding="utf-8"),
    })
    return results, (paths[".json"], paths[".md"])


def attention_backends(config, rounds=2):
    """Seconds per UNet call under each attention implementation that runs here, interleaved, medians. Notebook 08.

    diffusers' `set_attention_backend` does not reach this UNet: its attention processor
    (AttnProcessor2_0) calls torch's scaled_dot_product_attention (SDPA) directly. What
    does apply is the processor (SDPA or the older matrix-product AttnProcessor) and, inside
    SDPA, torch's kernel choice.
    """
    pipe = _load(config)
    unet, dtype = pipe.unet, getattr(torch, config["dtype"])
    latent = config["size"] // pipe.vae_scale_factor
    sample = torch.randn(1, unet.config.in_channels, config["frames"], latent, latent, dtype=dtype, device=config["device"])
    # The prompt embeddings the UNet attends to: one row per token the text encoder reads.
    text = torch.randn(1, family_of(pipe).max_tokens, unet.config.cross_attention_dim, dtype=dtype, device=config["device"])
    kernels = {"SDPA, torch's choice": None, "SDPA, math kernel": SDPBackend.MATH}
    if config["device"] == "cuda":  # on 2 CPU cores there is time for the two SDPA settings above only
        kernels.update({"SDPA, flash kernel": SDPBackend.FLASH_ATTENTION, "SDPA, memory-efficient kernel": SDPBackend.EFFICIENT_ATTENTION})
    times = {name: [] for name in [*kernels, "AttnProcessor (no SDPA)"]}

    def once(name):
        unet.set_attn_processor(AttnProcessor() if name.startswith("AttnProcessor") else AttnProcessor2_0())
        backend = kernels.get(name)
        start = time.perf_counter()
        try:
            with torch.inference_mode(), (sdpa_kernel(backend) if backend else nullcontext()):
                unet(sample, 500, encoder_hidden_states=text)
        except RuntimeError as error:  # a kernel that cannot run here says so
            return str(error).splitlines()[0][:120]
        if config["device"] == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    errors = {}
    for name in times:
        once(name)  # warm-up
    for i in range(rounds):
        for name in (list(times) if i % 2 == 0 else list(reversed(times))):
            took = once(name)
            if isinstance(took, str):
                errors[name] = took
            else:
                times[name].append(took)
    return dict(
        config={k: config[k] for k in ("model", "device", "dtype", "frames", "size")}, rounds=rounds,
        median_s={name: statistics.median(t) for name, t in times.items() if t}, spread_s={name: [min(t), max(t)] for name, t in times.items() if t},
        errors=errors,
    )


def save_results(results, stem, out_dir=OUT_DIR):
    """Publish `results` as `stem`.json in `out_dir` (a free name: nothing replaced or written through a link)."""
    return publish(out_dir, stem, {".json": lambda path: Path(path).write_text(json_text(results), encoding="utf-8")})[".json"]


def main(argv=None):
    """`python benchmarks/bench.py [--set tiny|full|fast-tiny|fast-full] [--model TINY] [--out FOLDER] [--quick]`."""
    tiny = [name for name, model in models().items() if model.tiny]
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--set", dest="which", choices=list(SETS), default="tiny", help="tiny: seconds; full: the real architecture (minutes); fast-tiny, fast-full: DPM-25 against LCM-4, with and without torch.compile (notebook 08)")
    parser.add_argument("--out", default=str(OUT_DIR), help="folder for the JSON and Markdown results")
    parser.add_argument("--model", choices=tiny, default="tiny", help="the tiny model the tiny set measures (default tiny, ModelScope's)")
    parser.add_argument("--quick", action="store_true", help="one tiny setting only, for a smoke test")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        config = json.loads(args.child)
        print(json.dumps(attention_backends(config) if config.get("attention") else measure(config)))
        return
    configs = None
    if args.quick:
        configs = [dict(_tiny_configs("cpu", args.model)[0], frames=_frames_from(_family(args.model), 4), size=32, steps=2)]
    results, paths = run(args.which, args.out, configs=configs, with_overhead=not args.quick, model=args.model)
    print(f"Wrote {paths[0]} and {paths[1]} in {results['total_s']:.0f} s.")


if __name__ == "__main__":
    main()
