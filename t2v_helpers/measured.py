"""The figures the benchmarks measured, read from the committed results shipped with the package. Notebook 07.

The benchmarks themselves live outside the package, in the repository's benchmarks/
(`python benchmarks/bench.py --set full`); they write their results to benchmarks/results/,
which pyproject.toml also ships in the wheel as t2v_helpers/results/, so an installed
package reads them without a network.
"""

import json
from pathlib import Path

from .errors import SettingError

_CHECKOUT_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
_PACKAGED_RESULTS = Path(__file__).resolve().parent / "results"
RESULTS_DIR = _PACKAGED_RESULTS if _PACKAGED_RESULTS.is_dir() else _CHECKOUT_RESULTS
REAL_STEPS = 25  # the lesson's default: full-size times are extrapolated to this many steps


def load_results(name="cpu-full", folder=None):
    """The committed benchmark results `name` (e.g. 'cpu-full'), shipped with the package: no network. Notebook 07."""
    folder = Path(folder) if folder else RESULTS_DIR
    path = folder / f"{name}.json"
    if not path.is_file():
        names = sorted(p.stem for p in folder.glob("*.json")) or ["none found"]
        raise SettingError("name", name, f"is not a results file in {folder}", f"one of {names}", f"name={names[0]!r}")
    return json.loads(path.read_text(encoding="utf-8"))


def _gib(value):
    return "" if value is None else f"{value / 2**30:.2f}"


def _seconds(value):
    return "" if value is None else f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _load(run):
    return f"{run.get('load_before') or 0:.2f} / {run.get('load_after') or 0:.2f}"


def _header(results):
    """The bold caption, the machine and the notes that start every table."""
    info = results["machine"]
    gpu = info["gpu"]["name"] if info["gpu"] else "no GPU"
    lines = [
        f"**{results['title']}**",
        "",
        f"Measured {results['date']} on {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB RAM, {gpu}; "
        f"torch {info['versions'].get('torch')}, diffusers {info['versions'].get('diffusers')}.",
        "",
    ]
    return lines + [f"- {note}" for note in results["notes"]]


def _memory(run, cuda):
    if cuda:
        return (
            f"{_gib(run.get('cuda_max_allocated_denoise'))} / {_gib(run.get('cuda_max_allocated_decode'))} | "
            f"{_gib(max(run.get('cuda_max_reserved_denoise', 0), run.get('cuda_max_reserved_decode', 0)))}"
        )
    return f"{_gib(run['rss_after_load'])} | {_gib(run['peak_rss_denoise'])} / {_gib(run['peak_rss_decode'])}"


def markdown(results):
    """The results as a Markdown table with the machine and the load it ran under. Notebook 07.

    The title is a bold caption, not a heading, so that the table sits inside the
    section of the notebook or page that shows it.
    """
    lines = _header(results)
    cuda = any(run.get("device") == "cuda" for run in results["runs"])
    memory_header = "peak allocated GiB (denoise / decode) | peak reserved GiB" if cuda else "RSS after load GiB | peak RSS GiB (denoise / decode)"
    lines += [
        "",
        f"| model | dtype | offload | VAE slicing | frames | size | steps run | s per step | VAE decode s | end-to-end s | est. {REAL_STEPS} steps s | {memory_header} | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        head = f"| {run['model']} | {run['dtype']} | {run['offload']} | {'on' if run['vae_slicing'] else 'off'} | {run['frames']} | {run['size']} | {run['steps']}"
        if "error" in run:
            lines.append(f"{head} | failed: {run['error'][:80]} | | | | | | {_load(run)} |")
            continue
        estimate = _seconds(run[f"estimated_{REAL_STEPS}_steps_s"])
        lines.append(
            f"{head} | {_seconds(run['step_s'])} | {_seconds(run['decode_s'])} | {_seconds(run['end_to_end_s'])} | {estimate} | {_memory(run, cuda)} | {_load(run)} |"
        )
    if results.get("overhead"):
        o = results["overhead"]
        lines += [
            "",
            f"Helper overhead: `t2v.generate` takes {o['ratio_median']:.3f} times as long as a raw `pipe(...)` call "
            f"(median of {o['rounds']} interleaved pairs, tiny model, {o['frames']} frames of {o['size']}x{o['size']}, {o['steps']} steps).",
        ]
    return "\n".join(lines) + "\n"


def _attention_lines(attention):
    """The table of seconds per UNet call under each attention implementation, or why there is none."""
    if attention.get("median_s"):
        c = attention["config"]
        lines = ["", f"One UNet call ({c['model']}, {c['dtype']}, {c['frames']} frames of {c['size']}x{c['size']}, batch 1), "
                 f"median of {attention['rounds']} interleaved rounds after a warm-up:", "",
                 "| attention | s per UNet call | spread s |", "|---|---|---|"]
        for name, median in attention["median_s"].items():
            low, high = attention["spread_s"][name]
            lines.append(f"| {name} | {_seconds(median)} | {_seconds(low)} to {_seconds(high)} |")
        return lines + [f"| {name} | did not run: {why} | |" for name, why in attention.get("errors", {}).items()]
    if attention.get("error"):
        return ["", f"Attention measurement failed: {attention['error']}"]
    return []


def markdown_fast(results):
    """The fast-set results (DPM-25 against LCM-4, compiled or not) as Markdown. Notebook 08."""
    text = "\n".join(_header(results)).rstrip() + "\n"
    lines = [
        "",
        "| model | dtype | frames | size | scheduler | guidance | torch.compile | steps run | steps per video | UNet calls x batch | UNet evaluations per video | first call s | s per step | VAE decode s | s per video | peak RSS GiB (denoise) | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in results["runs"]:
        head = f"| {run['model']} | {run['dtype']} | {run['frames']} | {run['size']} | {run['scheduler']} | {run['guidance']:g} | {'on' if run['compile'] else 'off'} | {run['steps']} | {run['video_steps']}"
        if "error" in run:
            lines.append(f"{head} | failed: {run['error'][:80]} | | | | | | | {_load(run)} |")
            continue
        lines.append(
            f"{head} | {run['unet_calls']} x {run['unet_batch']} | {run['unet_evaluations_per_video']} | {_seconds(run['first_call_s'])} | "
            f"{_seconds(run['step_s'])} | {_seconds(run['decode_s'])} | {_seconds(run['estimated_video_s'])} | {_gib(run['peak_rss_denoise'])} | {_load(run)} |"
        )
    return text + "\n".join(lines + _attention_lines(results.get("attention") or {})) + "\n"
