"""Kubernetes resource quantities (`100m`, `1Gi`, `1e3`), parsed exactly as apimachinery does."""

from __future__ import annotations

import math
import re
from decimal import ROUND_UP, Decimal, localcontext

__all__ = ["QuantityError", "parse_quantity", "scheduler_units"]

# apimachinery's grammar (resource/quantity.go parseQuantityString): an optional sign, digits,
# an optional "." and digits (either part may be empty: "." and "Mi" both mean 0), then a
# suffix made of suffix letters, an optional sign and digits. Only ASCII digits count.
_SHAPE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)", re.ASCII)
_EXPONENT = re.compile(r"[eE]([+-]?[0-9]+)", re.ASCII)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_NANO = Decimal("1e-9")
# Binary-suffixed quantities saturate at the largest int64 (apimachinery's maxAllowed).
_MAX = Decimal(2**63 - 1)
_MAX_EXPONENT = 2**31 - 1
_MAX_UNITS = 2**63 - 1


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


def parse_quantity(text: str) -> Decimal:
    """Parse a quantity exactly; round up to 1n, cap binary (Ki..Ei) values at int64 (upstream)."""
    if not text:
        raise QuantityError("quantity is empty")
    shape = _SHAPE.fullmatch(text)
    if shape is None:
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    sign, whole, frac, suffix = shape.groups()
    number = Decimal(f"{whole or '0'}.{frac or '0'}")
    if suffix in _BINARY:
        scale = Decimal(2) ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        scale = Decimal(10) ** _DECIMAL[suffix]
    else:
        power = _EXPONENT.fullmatch(suffix)
        if power is None or abs(int(power.group(1))) > _MAX_EXPONENT:
            raise QuantityError(f"unable to parse quantity's suffix: {text!r}")
        scale = Decimal(f"1e{int(power.group(1))}")
    with localcontext() as ctx:
        ctx.prec = len(text) + 60
        ctx.Emax = 999_999_999_999
        ctx.Emin = -999_999_999_999
        value = number * scale
        if suffix in _BINARY and value > _MAX:
            value = _MAX
        else:
            exponent = value.as_tuple().exponent
            if value and isinstance(exponent, int) and exponent < -9:
                value = value.quantize(_NANO, rounding=ROUND_UP)
        value = value.normalize() if value else Decimal(0)
        return -value if sign == "-" else value


def scheduler_units(resource: str, value: Decimal) -> int:
    """Integer units the scheduler compares: millicores for cpu, rounded-up units otherwise.

    Kept within int64, where the scheduler's counters live.
    """
    bounded = max(-_MAX, min(_MAX, value))
    units = math.ceil(bounded * 1000 if resource == "cpu" else bounded)
    return max(-_MAX_UNITS, min(_MAX_UNITS, units))
