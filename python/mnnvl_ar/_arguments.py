"""The scalar arguments of the public functions, checked by name before they reach the model: a value of the
wrong type raises TypeError naming the argument and what it takes (the binding's own TypeError shows only its
internal signature), an integer beyond 64 bits ValueError."""

import numbers

# What each argument takes: "name" a string (strategy, profile, ...), "int" a whole number, "real" a number.
_KINDS = {
    "strategy": "name", "profile": "name", "quant": "name", "scale_layout": "name", "name": "name",
    "sm_count": "int", "token": "int", "col": "int",
    "eps": "real", "weight_bias": "real", "quant_scale": "real",
}
_TAKES = {"name": "a string", "int": "a whole number", "real": "a number"}
# The arguments whose default is None (the model's own choice, or no quantisation).
_MAY_BE_NONE = {"eps", "quant", "quant_scale", "scale_layout"}


def check_scalars(**arguments):
    """Checks each keyword argument by its name's kind (_KINDS); None only where it is a default."""
    for name, value in arguments.items():
        if value is None and name in _MAY_BE_NONE:
            continue
        kind = _KINDS[name]
        if kind == "name":
            ok = isinstance(value, str)
        elif kind == "int":
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        else:
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not ok:
            raise TypeError(f"{name} takes {_TAKES[kind]}, not {type(value).__name__} ({value!r})")
        if kind == "int" and not -(1 << 63) <= int(value) < (1 << 63):
            raise ValueError(f"{name} {value} is out of range (64-bit)")
