"""The packaged model's MLflow pyfunc, saved as models-from-code: MLflow runs this file."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel, PythonModelContext


class DeitkitImageClassifier(PythonModel):
    """Scores a DataFrame column `image` of base64 strings with deitkit's Classifier.

    The output has one row per image: `probs` (label order), `labels` (the full label list) and
    `predicted` (the labels `Prediction.predicted` picks with the `threshold` and `top_k` params;
    without a `threshold`, the package's per-label thresholds where deitkit.json has them). The
    package's temperature (deitkit.json) scales the logits before `probs` are computed.
    """

    def load_context(self, context: PythonModelContext) -> None:
        # Imported here so that MLflow has put the packaged deitkit (code/) on sys.path first.
        from deitkit.inference import Classifier

        self.classifier = Classifier.from_pretrained(context.artifacts["checkpoint"])

    def predict(
        self,
        context: PythonModelContext,
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,
    ) -> pd.DataFrame:
        from deitkit.errors import DeitkitError
        from deitkit.inference import check_threshold, check_top_k
        from deitkit.inference.packaged import INPUT_COLUMN, OUTPUT_COLUMNS

        params = params or {}
        try:
            threshold = params.get("threshold")
            threshold = None if threshold is None else check_threshold(threshold)
            top_k = params.get("top_k")
            top_k = None if top_k is None else check_top_k(top_k)
            if INPUT_COLUMN not in model_input.columns:
                columns = list(model_input.columns)
                raise MlflowException.invalid_parameter_value(
                    f"the input has no column {INPUT_COLUMN!r} (it has {columns})"
                )
            predictions = self.classifier.predict_inputs(model_input[INPUT_COLUMN].tolist())
        except DeitkitError as err:
            # MLflow's scoring server answers an invalid-parameter MlflowException with a 400.
            raise MlflowException.invalid_parameter_value(str(err)) from err
        rows = [
            {
                "probs": p.probs,
                "labels": p.labels,
                "predicted": p.predicted(threshold=threshold, top_k=top_k),
            }
            for p in predictions
        ]
        return pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))


mlflow.models.set_model(DeitkitImageClassifier())
