"""Shared fixtures: offline, CPU-only settings for every test."""

from __future__ import annotations

import os

# No test may reach a model hub or phone home; tiny random models are built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
