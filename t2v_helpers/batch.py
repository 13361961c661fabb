"""Many prompts on many GPUs: split a prompts file across processes, one per GPU. README: Command line.

    torchrun --nproc_per_node 4 -m t2v_helpers.batch --prompts prompts.txt --out outputs

Accelerate's `PartialState.split_between_processes` gives each process its share of the
lines; each process loads the model once, on its own GPU, and writes its videos and
sidecars into `OUT/line-NNN/`, named by the prompt's line number in the file, so no two
processes ever write the same file. Without a launcher it runs as one process.
"""

import argparse
import os
import sys

import torch

from .cli import EXIT_STOPPED, EXIT_USER_ERROR, STOPPED, USER_ERRORS, add_generate_options, check_arguments, explain, load, make_video, say, stop, whole_lines
from .publish import own_folder


def line_folder(out_dir, number):
    """The folder for the prompt on line `number` of the prompts file, OUT/line-007, made if missing. README: Command line.

    It is a folder the batch makes and uses itself: a link there (even to a folder), a file or a
    FIFO is refused with a VideoExportError, never followed or replaced, since the videos of line 7
    belong in line-007 and nowhere else.
    """
    return own_folder(out_dir, f"line-{number:03d}")


def main(argv=None):
    """Make one video per line of --prompts, the lines split across the launched processes. README: Command line.

    Every line printed goes out whole, in one write (cli.whole_lines), so the processes'
    lines never run into each other on the shared terminal.
    """
    with whole_lines():
        return _run(argv)


def _run(argv):
    from accelerate import PartialState

    parser = argparse.ArgumentParser(prog="python -m t2v_helpers.batch", description=__doc__.splitlines()[0])
    add_generate_options(parser, prompt_required=True)
    args = parser.parse_args(argv)
    # gloo on the CPU only coordinates (who takes which lines, waiting at the end), so
    # it works with CPU processes too; each process picks its GPU itself below.
    state = PartialState(cpu=True)
    try:
        prompts = check_arguments(args)
        # Before the model loads: a line folder planted as a link stops the batch now, not after minutes of work.
        for number, _ in prompts:
            if os.path.lexists(args.out / f"line-{number:03d}"):  # checked only: no empty folders made before the work
                line_folder(args.out, number)
    except (ValueError, *USER_ERRORS) as error:  # every process reads the same file, so every process stops here
        say(parser.format_usage().rstrip("\n"), sys.stderr)
        stop(EXIT_USER_ERROR, f"{parser.prog}: error: {explain(error)}")

    options = {}
    if torch.cuda.is_available():
        torch.cuda.set_device(state.local_process_index % torch.cuda.device_count())
        # diffusers' CPU offload always returns the model to GPU 0, so keep it whole on this process's GPU.
        options["offload"] = "none"
    rank = f"[{state.process_index}/{state.num_processes}] "
    with state.split_between_processes(prompts) as mine:
        say(f"{rank}{len(mine)} of {len(prompts)} prompts: lines {', '.join(str(n) for n, _ in mine) or 'none'}")
        try:
            pipe = load(args, **options) if mine else None
            for number, prompt in mine:
                make_video(pipe, prompt, args, line_folder(args.out, number), label=f"{rank}line {number}: ", own_folder=True)
        except USER_ERRORS as error:  # worded and numbered as in the `t2v` command line
            stop(EXIT_USER_ERROR, f"{parser.prog}: error: {rank}{explain(error)}")
        except KeyboardInterrupt:
            stop(EXIT_STOPPED, f"\n{parser.prog}: {rank}{STOPPED}")
    state.wait_for_everyone()
    return 0


if __name__ == "__main__":
    sys.exit(main())
