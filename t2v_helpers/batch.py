"""Many prompts on many GPUs: split a prompts file across processes, one per GPU. README: Command line.

    torchrun --nproc_per_node 4 -m t2v_helpers.batch --prompts prompts.txt --out outputs

Accelerate's `PartialState.split_between_processes` gives each process its share of the
lines; each process loads the model once, on its own GPU, and writes its videos and
sidecars into `OUT/line-NNN/`, named by the prompt's line number in the file, so no two
processes ever write the same file. Without a launcher it runs as one process.
"""

import argparse
import sys
from pathlib import Path

import torch

from .cli import EXIT_STOPPED, EXIT_USER_ERROR, STOPPED, USER_ERRORS, add_generate_options, check_arguments, explain, load, make_video


def line_folder(out_dir, number):
    """The folder for the prompt on line `number` of the prompts file: OUT/line-007. README: Command line."""
    return Path(out_dir) / f"line-{number:03d}"


def main(argv=None):
    """Make one video per line of --prompts, the lines split across the launched processes. README: Command line."""
    from accelerate import PartialState

    parser = argparse.ArgumentParser(prog="python -m t2v_helpers.batch", description=__doc__.splitlines()[0])
    add_generate_options(parser, prompt_required=True)
    args = parser.parse_args(argv)
    # gloo on the CPU only coordinates (who takes which lines, waiting at the end), so
    # it works with CPU processes too; each process picks its GPU itself below.
    state = PartialState(cpu=True)
    try:
        prompts = check_arguments(args)
    except ValueError as error:
        parser.error(str(error))  # every process reads the same file, so every process stops here

    options = {}
    if torch.cuda.is_available():
        torch.cuda.set_device(state.local_process_index % torch.cuda.device_count())
        # diffusers' CPU offload always returns the model to GPU 0, so keep it whole on this process's GPU.
        options["offload"] = "none"
    rank = f"[{state.process_index}/{state.num_processes}] "
    with state.split_between_processes(prompts) as mine:
        print(f"{rank}{len(mine)} of {len(prompts)} prompts: lines {', '.join(str(n) for n, _ in mine) or 'none'}", flush=True)
        try:
            pipe = load(args, **options) if mine else None
            for number, prompt in mine:
                make_video(pipe, prompt, args, line_folder(args.out, number), label=f"{rank}line {number}: ")
        except USER_ERRORS as error:  # worded and numbered as in the `t2v` command line
            parser.exit(EXIT_USER_ERROR, f"{parser.prog}: error: {rank}{explain(error)}\n")
        except KeyboardInterrupt:
            parser.exit(EXIT_STOPPED, f"\n{parser.prog}: {rank}{STOPPED}\n")
    state.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
