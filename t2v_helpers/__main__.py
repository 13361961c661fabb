"""Make one video from the command line: `python -m t2v_helpers "Spiderman is surfing"`.

With no GPU, or no way to the model's weights, it uses the built-in tiny model and says so.
"""

import argparse

from . import default_model, generate, load_pipeline, save_video, scheduler_names, set_scheduler
from .errors import GPUMemoryError, ModelNotAvailableError, PickleWeightsError, SettingError, VideoExportError
from .schedulers import check_scheduler_name
from .validate import check_output_dir, check_settings


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m t2v_helpers", description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?", default="Spiderman is surfing")
    parser.add_argument("--model", default="auto", help="'auto' (default), 'tiny', or a model id or folder")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scheduler", default="dpm", help=f"one of {', '.join(scheduler_names())}")
    parser.add_argument("--out", default="outputs", help="folder for the MP4 and its JSON sidecar")
    parser.add_argument("--gif", action="store_true", help="also write a GIF")
    args = parser.parse_args(argv)
    try:
        # Check every setting before the model loads, which can take minutes.
        check_settings(None, args.prompt, args.steps, args.frames, None, None, 9.0, args.seed)
        check_scheduler_name(args.scheduler)
        check_output_dir(args.out, name="--out", create=True)
    except ValueError as error:
        parser.error(str(error))

    model = args.model
    if model == "auto":
        model, why = default_model()
        print(why)
    try:
        pipe = load_pipeline(model)
        set_scheduler(pipe, args.scheduler)
        result = generate(pipe, args.prompt, steps=args.steps, frames=args.frames, seed=args.seed)
        saved = save_video(result, args.out, gif=args.gif)
    except (SettingError, GPUMemoryError, ModelNotAvailableError, PickleWeightsError, VideoExportError) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    print(f"Made {len(result.frames)} frames in {result.elapsed_s:.1f} s")
    for path in (saved.mp4, saved.gif, saved.sidecar):
        if path:
            print(f"Wrote {path}")


if __name__ == "__main__":
    main()
