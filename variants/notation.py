"""Mutant notation expanded against a template sequence.

Three ways to name a variant, all resolved to the full variant sequence:

* substitutions at 1-based template positions: ``D102Y``, a multi-mutant ``W99F:D102Y`` (``WT`` or
  an empty string is the template itself); the wild-type letter must match the template;
* the full variant sequence (same length as the template);
* the variable window alone (``window_start`` given): its letters replace the template from that
  1-based position on, e.g. the DMS's ten CDR-H3 residues at position 99.
"""

from __future__ import annotations

import re

_SUBSTITUTION = re.compile(r"^([A-Z*])(\d+)([A-Z*])$")
_SEPARATORS = re.compile(r"[:;,\s]+")
WILD_TYPE = ("", "WT", "WILD-TYPE", "WILDTYPE")


class NotationError(ValueError):
    """A mutant that cannot be expanded against its template; the message names the part at fault."""


def parse_substitutions(mutant: str) -> list[tuple[str, int, str]]:
    """``"W99F:D102Y"`` → ``[("W", 99, "F"), ("D", 102, "Y")]``; positions are 1-based."""
    out = []
    for part in _SEPARATORS.split(mutant.strip().upper()):
        if not part:
            continue
        match = _SUBSTITUTION.match(part)
        if match is None:
            raise NotationError(f"{part!r} is not a substitution like D102Y")
        out.append((match.group(1), int(match.group(2)), match.group(3)))
    return out


def apply_substitutions(template: str, mutant: str) -> str:
    """The template with ``mutant``'s substitutions applied; a wrong wild-type letter is an error naming it."""
    letters = list(template)
    seen: set[int] = set()
    for wt, pos, new in parse_substitutions(mutant):
        name = f"{wt}{pos}{new}"
        if not 1 <= pos <= len(template):
            raise NotationError(f"{name}: position {pos} is outside the template (1..{len(template)})")
        if template[pos - 1] != wt:
            raise NotationError(f"{name}: the template has {template[pos - 1]} at position {pos}, not {wt}")
        if pos in seen:
            raise NotationError(f"{name}: position {pos} is mutated twice")
        seen.add(pos)
        letters[pos - 1] = new
    return "".join(letters)


def expand(template: str, mutant: str, window_start: int | None = None) -> str:
    """The full variant sequence that ``mutant`` names (see the module docstring for the forms)."""
    text = "".join(mutant.split()).upper()
    if text in WILD_TYPE:
        return template
    if window_start is not None:
        start = window_start - 1
        if start < 0 or start + len(text) > len(template):
            raise NotationError(
                f"{text!r} at position {window_start} runs past the template's end ({len(template)} residues)"
            )
        return template[:start] + text + template[start + len(text) :]
    if _SUBSTITUTION.match(_SEPARATORS.split(text)[0] or "") and any(ch.isdigit() for ch in text):
        return apply_substitutions(template, text)
    if len(text) == len(template) and text.isalpha():
        return text
    raise NotationError(
        f"{mutant!r} is neither substitutions (D102Y, W99F:D102Y) nor a full sequence of {len(template)} residues"
    )


def mutations_between(template: str, variant: str) -> list[str]:
    """The substitutions that turn ``template`` into ``variant`` (equal lengths), e.g. ``["W99F"]``."""
    if len(template) != len(variant):
        raise NotationError(f"variant of {len(variant)} residues, template of {len(template)}")
    return [f"{a}{i + 1}{b}" for i, (a, b) in enumerate(zip(template, variant, strict=True)) if a != b]
