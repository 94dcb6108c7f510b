"""Exceptions raised by apnn: one class per C status code, all subclasses of ApnnError."""


class ApnnError(Exception):
    """An error reported by libapnn (status code and message) or by the Python checks."""

    status = "APNN_STATUS_INTERNAL_ERROR"

    def __init__(self, message, status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidArgumentError(ApnnError, ValueError):
    status = "APNN_STATUS_INVALID_ARGUMENT"


class InvalidTypeError(InvalidArgumentError, TypeError):
    """A wrong dtype or Python type; also a TypeError."""


class UnsupportedError(ApnnError):
    status = "APNN_STATUS_UNSUPPORTED"


class NoDeviceError(ApnnError, RuntimeError):
    status = "APNN_STATUS_NO_DEVICE"


class OutOfMemoryError(ApnnError, MemoryError):
    status = "APNN_STATUS_OUT_OF_MEMORY"


class CudaError(ApnnError, RuntimeError):
    status = "APNN_STATUS_CUDA_ERROR"


_BY_STATUS = {cls.status: cls for cls in (InvalidArgumentError, UnsupportedError, NoDeviceError,
                                          OutOfMemoryError, CudaError)}


def error_for(status_name, message):
    """The exception for a C status name of libapnn (APNN_STATUS_...) or of the baselines'
    library (APNNB_STATUS_...): the same class for the same status."""
    kind = status_name.partition("_STATUS_")[2]
    return _BY_STATUS.get("APNN_STATUS_" + kind, ApnnError)(message, status_name)
