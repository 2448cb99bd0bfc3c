"""``farmwatch-web-user add|passwd|remove|list``: the accounts of farmwatch-web.

Passwords are read from the terminal (asked twice, not echoed) or, when stdin is not a
terminal, from its first line; never from the command line, where any user of the machine
could read them in the process list. The web application sees a change at its next request.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from pathlib import Path

from argon2 import PasswordHasher

from collector.web.users import (
    USER_NAME_PATTERN,
    Passwords,
    User,
    UsersFileError,
    load_users,
    password_problem,
    save_users,
)
from farmwatch_shared.clock import Clock, SystemClock
from farmwatch_shared.farm.directory import DEFAULT_FARM_DIR, load_farm_dir
from farmwatch_shared.farm.model import FarmConfigError

DEFAULT_USERS_FILE = Path("/etc/farmwatch/web-users.json")


class UserCommandError(Exception):
    """A refused command; the message says why."""


def read_password(prompt_twice: bool) -> str:
    """A new password from the terminal (twice) or stdin's first line."""
    if sys.stdin.isatty():
        first = getpass.getpass("Contraseña / password: ")
        if prompt_twice and getpass.getpass("Otra vez / again: ") != first:
            raise UserCommandError("las contraseñas no coinciden / the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    problem = password_problem(password)
    if problem is not None:
        raise UserCommandError(problem)
    return password


def _load(path: Path) -> dict[str, User]:
    return load_users(path) if path.exists() else {}


def _known_farms(farm_dir: Path, farms: list[str]) -> None:
    try:
        known = load_farm_dir(farm_dir)
    except FarmConfigError as exc:
        raise UserCommandError(f"{exc} (--farm-dir)") from None
    unknown = [f for f in farms if f not in known]
    if unknown:
        raise UserCommandError(
            f"ranchos desconocidos en / unknown farms in {farm_dir}: {', '.join(unknown)}"
        )


def add(args: argparse.Namespace, passwords: Passwords, clock: Clock) -> str:
    """Create an account."""
    if not re.match(USER_NAME_PATTERN, args.name):
        raise UserCommandError(
            f"nombre no válido / invalid name {args.name!r}: a-z, 0-9, '.', '_', '-', ≤ 32"
        )
    users = _load(args.users_file)
    if args.name in users:
        raise UserCommandError(f"{args.name} ya existe / already exists (passwd to change it)")
    farms = tuple(args.farm or ())
    if farms:
        _known_farms(args.farm_dir, list(farms))
    try:
        user = User(
            role=args.role,
            farms=farms,
            language=args.language,
            password_hash=passwords.hash(read_password(True)),
            changed_ms=clock.now_ms(),
        )
    except ValueError as exc:
        raise UserCommandError(str(exc)) from None
    users[args.name] = user
    save_users(args.users_file, users)
    return f"cuenta creada / account added: {args.name} ({args.role})"


def passwd(args: argparse.Namespace, passwords: Passwords, clock: Clock) -> str:
    """Set a new password (the account's open sessions end)."""
    users = _load(args.users_file)
    if args.name not in users:
        raise UserCommandError(f"no existe / no such account: {args.name}")
    password_hash = passwords.hash(read_password(True))
    users[args.name] = users[args.name].model_copy(
        update={"password_hash": password_hash, "changed_ms": clock.now_ms()}
    )
    save_users(args.users_file, users)
    return f"contraseña cambiada / password changed: {args.name}"


def remove(args: argparse.Namespace, passwords: Passwords, clock: Clock) -> str:
    """Delete an account (its sessions end at their next request)."""
    users = _load(args.users_file)
    if users.pop(args.name, None) is None:
        raise UserCommandError(f"no existe / no such account: {args.name}")
    save_users(args.users_file, users)
    return f"cuenta borrada / account removed: {args.name}"


def list_users(args: argparse.Namespace, passwords: Passwords, clock: Clock) -> str:
    """One line per account (no hashes)."""
    users = _load(args.users_file)
    lines = [
        f"{name}\t{user.role}\t{user.language}\t{','.join(user.farms) or '*'}"
        for name, user in sorted(users.items())
    ]
    return "\n".join(lines) if lines else "(sin cuentas / no accounts)"


def parser() -> argparse.ArgumentParser:
    """The command line."""
    top = argparse.ArgumentParser(
        prog="farmwatch-web-user",
        description="Cuentas de farmwatch-web / farmwatch-web accounts. The password is asked "
        "for on the terminal or read from stdin's first line, never given as an argument.",
    )
    top.add_argument(
        "--users-file",
        type=Path,
        default=Path(os.environ.get("FARMWATCH_WEB_USERS_FILE", DEFAULT_USERS_FILE)),
        help="accounts file (default $FARMWATCH_WEB_USERS_FILE or /etc/farmwatch/web-users.json)",
    )
    top.add_argument(
        "--farm-dir",
        type=Path,
        default=Path(os.environ.get("FARMWATCH_WEB_FARM_DIR", DEFAULT_FARM_DIR)),
        help="farm directory the operators' farms must be in (default $FARMWATCH_WEB_FARM_DIR "
        "or /etc/farmwatch/farms)",
    )
    commands = top.add_subparsers(dest="command", required=True)
    new = commands.add_parser("add", help="create an account")
    new.add_argument("name")
    new.add_argument("--role", choices=("operator", "agronomist", "admin"), required=True)
    new.add_argument("--farm", action="append", help="a farm of the operator (repeat for several)")
    new.add_argument("--language", choices=("es", "en"), default="es")
    new.set_defaults(run=add)
    change = commands.add_parser("passwd", help="set a new password")
    change.add_argument("name")
    change.set_defaults(run=passwd)
    gone = commands.add_parser("remove", help="delete an account")
    gone.add_argument("name")
    gone.set_defaults(run=remove)
    show = commands.add_parser("list", help="list the accounts")
    show.set_defaults(run=list_users)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 done, 2 refused."""
    args = parser().parse_args(argv)
    try:
        print(args.run(args, Passwords(PasswordHasher()), SystemClock()))
    except (UserCommandError, UsersFileError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
