"""The accounts file (JSON, written by ``farmwatch-web-user``): who may log in, with which role,
for which farms, in which language, and the argon2 hash of the password.

Roles: ``operator`` sees only the farms listed for the account and may acknowledge their
alerts; ``agronomist`` sees every farm, read only (no acknowledging); ``admin`` sees every farm
and may acknowledge.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from farmwatch_shared.contract import IDENT_PATTERN

MIN_PASSWORD_LENGTH = 10
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,31}$"
"""User names: lower case letters, digits, ``.``, ``_`` and ``-``, at most 32."""
Role = Literal["operator", "agronomist", "admin"]
UserName = Annotated[str, Field(pattern=USER_NAME_PATTERN)]
FarmId = Annotated[str, Field(pattern=IDENT_PATTERN)]


class User(BaseModel):
    """One account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    farms: tuple[FarmId, ...] = ()
    """The operator's farms; empty for agronomists and admins (who see every farm)."""
    language: Literal["es", "en"] = "es"
    password_hash: str = Field(min_length=20)
    changed_ms: int = Field(ge=0)
    """When the password was last set: sessions from before are no longer valid."""

    @model_validator(mode="after")
    def _farms_for_operators(self) -> User:
        if self.role == "operator" and not self.farms:
            raise ValueError("an operator needs at least one farm")
        if self.role != "operator" and self.farms:
            raise ValueError(f"a {self.role} sees every farm: list no farms")
        return self

    def sees(self, farm_id: str) -> bool:
        """Whether this account may see ``farm_id``."""
        return self.role != "operator" or farm_id in self.farms

    @property
    def may_acknowledge(self) -> bool:
        """Agronomists read only."""
        return self.role != "agronomist"


class UsersFile(BaseModel):
    """The file's layout."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    users: dict[UserName, User] = {}


class UsersFileError(ValueError):
    """An accounts file that cannot be used; the message says why."""


def load_users(path: Path) -> dict[str, User]:
    """The accounts by user name; raise UsersFileError when the file is unreadable or wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsersFileError(f"{path}: cannot read: {exc}") from None
    try:
        return dict(UsersFile.model_validate_json(text).users)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise UsersFileError(f"{path}: {problems}") from None


def save_users(path: Path, users: Mapping[str, User]) -> None:
    """Write the accounts atomically (a temporary file renamed over the old one). Readable by
    its owner and group only (0640): a new file takes the group of its directory (installed:
    /etc/farmwatch, group farmwatch, so the service can read it), a rewritten one keeps its
    owner, group and mode."""
    data = UsersFile(users=dict(sorted(users.items()))).model_dump(mode="json")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = path.stat()
        mode, owner, group = old.st_mode & 0o640, old.st_uid, old.st_gid
    else:
        mode, owner, group = 0o640, -1, path.parent.stat().st_gid
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        _chown(tmp, owner, group)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _chown(path: str, owner: int, group: int) -> None:
    # not root: the file stays the writer's, which it was
    with contextlib.suppress(PermissionError):
        os.chown(path, owner, group)


class Passwords:
    """argon2id hashing (argon2-cffi's default parameters, RFC 9106's second recommendation)."""

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._dummy = hasher.hash("farmwatch-web: no such user")

    def hash(self, password: str) -> str:
        """The hash to store for ``password``."""
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; for an unknown user (None) the work is done anyway
        against a dummy hash, so the answer takes as long as for a known one."""
        try:
            ok = self._hasher.verify(password_hash or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return (
            f"la contraseña necesita al menos {MIN_PASSWORD_LENGTH} caracteres / the password "
            f"needs at least {MIN_PASSWORD_LENGTH} characters"
        )
    if password != password.strip():
        return "sin espacios al principio o al final / no spaces at either end"
    return None
