"""The grpc-timeout header: 1 to 8 digits and a unit (H M S m u n)."""

from __future__ import annotations

import math

_UNITS = (("n", 1e-9), ("u", 1e-6), ("m", 1e-3), ("S", 1.0), ("M", 60.0), ("H", 3600.0))
_SECONDS_PER_UNIT = dict(_UNITS)
_MAX_DIGITS_VALUE = 99_999_999


def encode_timeout(seconds: float) -> str:
    """Encode a timeout in the finest unit that fits in 8 digits, rounding *up*.

    Rounding up keeps the peer's deadline no earlier than ours. Non-positive
    timeouts become the smallest expressible one (the caller should not send
    a call whose deadline has passed).
    """
    if seconds <= 0 or math.isnan(seconds):
        return "1n"
    for unit, size in _UNITS:
        # Tolerate float noise: 0.1 s must be 100m, not 100000001n.
        value = math.ceil(seconds / size - 1e-9)
        if value <= _MAX_DIGITS_VALUE:
            return f"{max(value, 1)}{unit}"
    return f"{_MAX_DIGITS_VALUE}H"


def decode_timeout(value: str) -> float:
    """Decode a grpc-timeout value to seconds; ValueError if malformed."""
    digits, unit = value[:-1], value[-1:]
    if not (1 <= len(digits) <= 8 and digits.isascii() and digits.isdigit()):
        raise ValueError(f"invalid grpc-timeout {value!r}")
    size = _SECONDS_PER_UNIT.get(unit)
    if size is None:
        raise ValueError(f"invalid grpc-timeout unit in {value!r}")
    return int(digits) * size
