"""Test defaults: offline, tiny model, small settings. An environment variable set before
pytest starts wins, so the GPU workflow can run the same suite on the real model."""

import os
import tempfile

for name, value in {
    "HF_HUB_OFFLINE": "1",
    "T2V_MODEL": "tiny",
    "T2V_STEPS": "2",
    "T2V_FRAMES": "8",
    "T2V_SIZE": "32",
    "T2V_OUTPUT_DIR": tempfile.mkdtemp(prefix="t2v-test-outputs-"),
}.items():
    os.environ.setdefault(name, value)
