"""deitkit: fine-tune, check and deploy DeiT-family image classifiers on Azure ML, locally first."""

__version__ = "0.1.0"
