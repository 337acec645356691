"""Scoring script of the online deployment: deitkit's scorer (`deitkit.serving.score`).

Azure ML's inference server calls `init()` once per worker and `run()` per request. Where the
environment does not install deitkit, the copy packaged with the model (`<model>/code/deitkit`)
is used. The batch deployment's `driver.py` does the same; each endpoint folder is uploaded on
its own (`code: .`), so the few lines that find the copy are in both scripts.
"""

import glob
import os
import sys


def _packaged_code() -> str:
    """The folder holding the nearest copy of deitkit under $AZUREML_MODEL_DIR (`<model>/code`).

    Any copy can import deitkit; `init()` then picks the model with deitkit's own search
    (`deitkit.inference.packaged.find_model_dir`), exactly as where deitkit is installed.
    """
    root = os.environ.get("AZUREML_MODEL_DIR", ".")
    # glob's `**` follows symlinked folders, as Azure's model mounts may be.
    pattern = os.path.join(glob.escape(root), "**", "code", "deitkit", "__init__.py")
    copies = glob.glob(pattern, recursive=True)
    if not copies:
        raise ModuleNotFoundError(
            f"deitkit is neither installed nor packaged with the model under {root}",
            name="deitkit",
        )
    nearest = min(copies, key=lambda path: (path.count(os.sep), path))
    return os.path.dirname(os.path.dirname(nearest))


try:
    from deitkit.serving import score
except ModuleNotFoundError as err:
    if err.name != "deitkit":
        raise
    sys.path.insert(0, _packaged_code())
    from deitkit.serving import score

init = score.init
run = score.run
