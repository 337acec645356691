"""deitkit: fine-tune, check and deploy DeiT-family image classifiers on Azure ML, locally first."""

import logging as _logging

__version__ = "0.1.0"

# transformers imports torchao wherever it is installed (torchao runs the torch-int8 engine), and
# torchao's import logs warnings about itself: CUDA-only kernels it cannot load on a CPU, and
# torch's note that torchao's register_constant call is deprecated. Neither is about deitkit or
# the user's model, and both would break a one-line error on stderr; errors still show.
for _name in ("torchao", "torch.utils._pytree"):
    _logging.getLogger(_name).setLevel(_logging.ERROR)
