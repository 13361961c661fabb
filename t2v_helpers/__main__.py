"""`python -m t2v_helpers "Spiderman is surfing"`: the `t2v generate` command, for when `t2v` is not on PATH.

With no GPU, or no way to the model's weights, it uses the built-in tiny model and says so.
`python -m t2v_helpers generate ...` takes every option of `t2v generate`.
"""

import sys

from .cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] not in (["generate"], ["upscale"]):
        argv = ["generate", *argv]
    sys.exit(main(argv, prog="python -m t2v_helpers"))
