"""``farmwatch-broker-user``: broker credentials and ACL entries for one farm.

The farm's user name is its farm id: the shipped ACL pattern ``farmwatch/v1/%u/#`` then lets
its agents write only their own farm's topics. A random password is hashed into the Mosquitto
password file with ``mosquitto_passwd`` (fed on stdin, never on a command line) and handed over
once: printed, or written to a new file readable only by its owner. It is never logged.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from farmwatch_shared.contract import IDENT_PATTERN

DEFAULT_PASSWORD_FILE = Path("/etc/mosquitto/farmwatch.passwd")
DEFAULT_ACL_FILE = Path("/etc/mosquitto/farmwatch.acl")
FARM_PATTERN_LINE = "pattern readwrite farmwatch/v1/%u/#"
RESERVED_USERS = frozenset({"farmwatch-collector", "farmwatch-alerts"})


class BrokerUserError(RuntimeError):
    """The credentials could not be created; the message says why."""


@dataclass(frozen=True)
class FarmCredentials:
    """A farm's broker login. ``password`` is the only copy of the secret: hand it over once."""

    user: str
    password: str

    def __repr__(self) -> str:
        """Without the password: logs and tracebacks print reprs."""
        return f"FarmCredentials(user={self.user!r}, password='**********')"


def new_password() -> str:
    """A random password (192 bits, URL-safe: easy to paste into an agent's secret file)."""
    return secrets.token_urlsafe(24)


def acl_entries(farm: str) -> list[str]:
    """Explicit ACL lines for one farm (the same rights the shipped pattern gives)."""
    return [f"user {farm}", f"topic readwrite farmwatch/v1/{farm}/#"]


def acl_grants_farm(acl_text: str, farm: str) -> bool:
    """Whether an ACL file already gives ``farm`` its topics (pattern or explicit entry)."""
    lines = [line.strip() for line in acl_text.splitlines()]
    if FARM_PATTERN_LINE in lines:
        return True
    entries = acl_entries(farm)
    return any(lines[i : i + 2] == entries for i in range(len(lines)))


def add_farm_user(
    farm: str,
    password_file: Path,
    *,
    password: str | None = None,
    mosquitto_passwd: str | None = None,
) -> FarmCredentials:
    """Hash a (new random) password for ``farm`` into ``password_file`` (created if missing;
    an existing user's password is replaced)."""
    if not re.fullmatch(IDENT_PATTERN, farm):
        raise BrokerUserError(f"not a valid farm id: {farm!r}")
    if farm in RESERVED_USERS:
        raise BrokerUserError(f"{farm!r} is reserved for a farmwatch service")
    tool = mosquitto_passwd or shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.path.exists(tool):
        raise BrokerUserError("mosquitto_passwd not found: install the mosquitto package")
    secret = password if password is not None else new_password()
    command = [tool, farm] if password_file.exists() else [tool, "-c", farm]
    command.insert(-1, str(password_file))
    if not password_file.exists():
        password_file.touch(mode=0o600)
    done = subprocess.run(
        command,
        input=f"{secret}\n{secret}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BrokerUserError(f"mosquitto_passwd failed: {done.stderr.strip()[:300]}")
    return FarmCredentials(farm, secret)


def add_acl_entries(farm: str, acl_file: Path) -> bool:
    """Append the farm's ACL entries unless the file already grants them. True if appended."""
    text = acl_file.read_text(encoding="utf-8") if acl_file.exists() else ""
    if acl_grants_farm(text, farm):
        return False
    with acl_file.open("a", encoding="utf-8") as out:
        out.write(("\n" if text and not text.endswith("\n") else "") + "\n".join(acl_entries(farm)))
        out.write("\n")
    return True


def write_secret(path: Path, secret: str) -> None:
    """Write a secret to a new file only its owner can read (never overwrite one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")


DESCRIPTION = """\
Crea el usuario del broker de una granja (contraseña aleatoria) y sus permisos (ACL).
/ Creates a farm's broker user (random password) and its ACL entries.

The password is shown once (or written to --secret-out, mode 0600) and never logged. Copy it to
the farm's Pi as /etc/farmwatch/mqtt-password (FARMWATCH_EDGE_MQTT_PASSWORD_FILE), then reload
Mosquitto: systemctl reload mosquitto.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(
        prog="farmwatch-broker-user",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("farm", help="farm id, e.g. oax-mixteca (the broker user name)")
    parser.add_argument("--password-file", type=Path, default=DEFAULT_PASSWORD_FILE)
    parser.add_argument("--acl-file", type=Path, default=DEFAULT_ACL_FILE)
    parser.add_argument(
        "--secret-out", type=Path, help="write the password to this new file (0600) instead"
    )
    args = parser.parse_args(argv)
    if args.secret_out is not None and args.secret_out.exists():
        print(f"Ya existe / already exists: {args.secret_out}", file=sys.stderr)
        return 2
    try:
        credentials = add_farm_user(args.farm, args.password_file)
        appended = add_acl_entries(args.farm, args.acl_file)
    except (BrokerUserError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    acl_note = "entradas añadidas / entries added" if appended else "ya cubierto / already granted"
    print(f"Usuario / user: {credentials.user}  (ACL {args.acl_file}: {acl_note})")
    if args.secret_out is not None:
        write_secret(args.secret_out, credentials.password)
        print(f"Contraseña guardada en / password written to {args.secret_out} (0600)")
    else:
        print("Contraseña (se muestra una sola vez) / password (shown once):")
        print(credentials.password)
    return 0
