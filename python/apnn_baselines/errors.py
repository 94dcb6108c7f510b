"""Exceptions raised by apnn_baselines: one class per C status code, all BaselineError."""


class BaselineError(Exception):
    """An error reported by libapnn_baselines (status name and message) or by the Python checks."""

    status = "APNNB_STATUS_INTERNAL_ERROR"

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidArgumentError(BaselineError, ValueError):
    status = "APNNB_STATUS_INVALID_ARGUMENT"


class UnsupportedError(BaselineError):
    status = "APNNB_STATUS_UNSUPPORTED"


class NoDeviceError(BaselineError, RuntimeError):
    status = "APNNB_STATUS_NO_DEVICE"


class OutOfMemoryError(BaselineError, MemoryError):
    status = "APNNB_STATUS_OUT_OF_MEMORY"


class CudaError(BaselineError, RuntimeError):
    status = "APNNB_STATUS_CUDA_ERROR"


_BY_STATUS = {cls.status: cls for cls in (InvalidArgumentError, UnsupportedError, NoDeviceError, OutOfMemoryError,
                                          CudaError)}


def error_for(status_name, message):
    return _BY_STATUS.get(status_name, BaselineError)(message, status_name)
