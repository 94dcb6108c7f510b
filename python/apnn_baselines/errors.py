"""apnn_baselines raises apnn's exceptions (apnn.errors): one class per status, whichever library
reported it; BaselineError is apnn.ApnnError."""
from apnn.errors import ApnnError as BaselineError  # noqa: F401
from apnn.errors import CudaError, InvalidArgumentError, NoDeviceError, OutOfMemoryError, UnsupportedError  # noqa: F401
from apnn.errors import error_for  # noqa: F401
