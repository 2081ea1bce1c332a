"""The one error the docking core raises, and how it becomes an envelope error at the HTTP edge.

The core (ligand, receptor, box, engine) runs in child processes too, so its error must pickle:
:class:`DockingError` keeps only strings. :func:`api_error` maps it onto the envelope's codes.
"""

from __future__ import annotations

from services.common.envelope import ApiError, ErrorCode

INVALID_SMILES = "INVALID_SMILES"
INVALID_STRUCTURE = "INVALID_STRUCTURE"
INVALID_REQUEST = "INVALID_REQUEST"
_CODES = (INVALID_SMILES, INVALID_STRUCTURE, INVALID_REQUEST)


class DockingError(ValueError):
    """Bad input: ``code`` is INVALID_SMILES, INVALID_STRUCTURE or INVALID_REQUEST (all 400)."""

    def __init__(self, code: str, details: str) -> None:
        if code not in _CODES:
            raise ValueError(f"unknown docking error code {code!r}")
        super().__init__(code, details)
        self.code, self.details = code, details

    def __str__(self) -> str:
        return f"{self.code}: {self.details}"


def api_error(err: DockingError) -> ApiError:
    """The envelope error (all three codes are 400s of :class:`ErrorCode`)."""
    return ApiError(ErrorCode(err.code), err.details)
