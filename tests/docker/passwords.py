"""What `random:index/randomPassword:RandomPassword` makes: a password from the classes its inputs allow."""

from __future__ import annotations

import secrets
import string
from typing import Any

DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"  # the provider's default special characters


def random_password(inputs: dict[str, Any]) -> str:
    """`length` characters, at least `minUpper`/`minLower`/`minNumeric`/`minSpecial` of each allowed class."""
    length = int(inputs.get("length", 16))
    special = inputs.get("overrideSpecial", DEFAULT_SPECIAL)
    classes = {"upper": (string.ascii_uppercase, "minUpper"), "lower": (string.ascii_lowercase, "minLower"),
               "numeric": (string.digits, "minNumeric"), "special": (special, "minSpecial")}
    alphabet, chars = "", []
    for flag, (letters, minimum) in classes.items():
        if inputs.get(flag, True) and letters:
            alphabet += letters
            chars += [secrets.choice(letters) for _ in range(int(inputs.get(minimum, 0)))]
    if not alphabet:
        raise ValueError("the password's inputs allow no characters")
    chars += [secrets.choice(alphabet) for _ in range(max(0, length - len(chars)))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)
