"""Scoring script of the online deployment: deitkit's scorer (`deitkit.serving.score`).

Azure ML's inference server calls `init()` once per worker and `run()` per request. Where the
environment does not install deitkit, the copy packaged with the model (`<model>/code/`) is used.
"""

import os
import sys
from pathlib import Path


def _packaged_code() -> Path:
    """The `code` folder of the packaged model under $AZUREML_MODEL_DIR (up to two levels down)."""
    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    for pattern in ("code/deitkit", "*/code/deitkit", "*/*/code/deitkit"):
        found = sorted(root.glob(pattern))
        if found:
            return found[0].parent
    raise ModuleNotFoundError(
        f"deitkit is neither installed nor packaged with the model under {root}", name="deitkit"
    )


try:
    from deitkit.serving import score
except ModuleNotFoundError as err:
    if err.name != "deitkit":
        raise
    sys.path.insert(0, str(_packaged_code()))
    from deitkit.serving import score

init = score.init
run = score.run
