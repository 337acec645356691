"""Scoring script of the Azure ML batch deployment: deitkit's batch driver (`init`, `run`).

The deployment's environment installs deitkit. Where it does not, the copy of deitkit that
`deitkit package` puts in the model (`<model>/code/deitkit`) is used instead, so the script
works with any environment that has the model's pinned requirements.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

try:
    import deitkit  # noqa: F401
except ImportError:
    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    # The registered folder sits one to three levels down (<model>/<version>/mlflow_model/).
    for pattern in ("code", "*/code", "*/*/code", "*/*/*/code"):
        found = sorted(p for p in root.glob(pattern) if (p / "deitkit" / "__init__.py").is_file())
        if found:
            sys.path.insert(0, str(found[0]))
            break

from deitkit.batch.driver import init, run

__all__ = ["init", "run"]
