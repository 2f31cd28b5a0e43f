"""The per-endpoint secret a gateway adds to what it forwards, so a replica answers its own gateway alone."""

from __future__ import annotations

import argparse
import hmac
import os

HEADER = b"x-mlspec-internal-token"
ENV = "MLSPEC_INTERNAL_TOKEN"  # the variable that carries it into the gateway's and the replicas' containers
MIN_LENGTH = 32


class TokenError(Exception):
    """The variable or file named for the token is unset or unreadable, or too short to be a secret."""


def from_env(name: str) -> bytes:
    """The token in variable `name`; taken from the environment, never the command line, which `ps` shows."""
    return _checked(os.environ.get(name, ""), f"${name}")


def from_file(path: str) -> bytes:
    """The token in file `path` (a mounted Secret: unlike a variable, no child process or crash dump inherits it),
    its trailing newline aside."""
    try:
        with open(path, encoding="utf-8") as handle:
            return _checked(handle.read().rstrip("\r\n"), path)
    except OSError as error:
        raise TokenError(f"cannot read the endpoint's internal token from {path}: {error.strerror}") from None


def add_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """--internal-token-env NAME | --internal-token-file PATH, `what` saying what the program does with it."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--internal-token-env", metavar="NAME",
                        help=f"the variable holding the endpoint's internal token: {what}")
    source.add_argument("--internal-token-file", metavar="PATH",
                        help="the file holding it (a mounted Secret), instead of a variable")


def from_arguments(args: argparse.Namespace) -> bytes | None:
    """The token the options of `add_arguments` name; None when neither is given. Raises TokenError."""
    if args.internal_token_file:
        return from_file(args.internal_token_file)
    return from_env(args.internal_token_env) if args.internal_token_env else None


def _checked(value: str, where: str) -> bytes:
    if len(value) < MIN_LENGTH:
        raise TokenError(f"{where} must hold the endpoint's internal token (at least {MIN_LENGTH} characters); "
                         f"it is {'empty or unset' if not value else 'too short'}")
    return value.encode()


def matches(offered: bytes | None, token: bytes) -> bool:
    """Compared in constant time: the answer's timing never tells how much of a guess was right."""
    return offered is not None and hmac.compare_digest(offered, token)
