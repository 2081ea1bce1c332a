"""An offline 3D view of a protein–ligand complex: 3Dmol.js (installed locally, never a CDN).

The protein is cropped here, in Python, to the whole residues near the ligand (never the first N
atoms of the file), drawn as cartoon with the contact residues as thin sticks and labelled; the
ligand as sticks with green carbons; a surface on request; a docking box as a wireframe (a box alone,
with no ligand yet, crops around the box). :func:`show_complex` is the one call a page makes (Predict,
Series and the Dock page's poses and pockets use the same one).

The uploaded text reaches the page only as JSON inside a script, with ``<``, ``>`` and ``&`` escaped,
so a file cannot close the script tag or inject markup.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import PurePosixPath

import streamlit as st

from flashdock import assets

CROP_A = 12.0  # residues with an atom this close to the ligand are drawn
CONTACT_A = 5.0  # residues with an atom this close are labelled
MAX_PROTEIN_ATOMS = 6000  # a cap after cropping: the nearest residues are kept
LIGAND_FORMATS = {".sdf": "sdf", ".mol": "sdf", ".mol2": "mol2", ".pdbqt": "pdbqt", ".pdb": "pdb"}

Atom = tuple[float, float, float]
Box = tuple[tuple[float, float, float], tuple[float, float, float]]  # centre, size (Å)


@dataclass(frozen=True)
class Residue:
    chain: str
    name: str
    number: str
    lines: tuple[str, ...]
    coords: tuple[Atom, ...]

    @property
    def label(self) -> str:
        return f"{self.name}{self.number.strip()}" + (f":{self.chain}" if self.chain.strip() else "")


@dataclass(frozen=True)
class View:
    """What the page draws: the cropped pocket (PDB text), the ligand, and the residues in contact."""

    pocket_pdb: str
    ligand: str
    ligand_format: str
    contacts: tuple[str, ...]
    label_positions: tuple[tuple[str, Atom], ...]
    n_protein_atoms: int
    n_kept_atoms: int
    n_ligand_atoms: int
    box: Box | None = None


def ligand_format(filename: str) -> str:
    """The 3Dmol format of a ligand file by its suffix (SDF when unknown: what the worker assumes)."""
    return LIGAND_FORMATS.get(PurePosixPath(filename.lower()).suffix, "sdf")


def _pdb_coords(line: str) -> Atom | None:
    try:
        return float(line[30:38]), float(line[38:46]), float(line[46:54])
    except ValueError:
        return None


def residues(pdb_text: str) -> list[Residue]:
    """Protein residues of ATOM/HETATM records in file order (waters skipped, unreadable lines too)."""
    found: dict[tuple[str, str, str], tuple[list[str], list[Atom]]] = {}
    for line in pdb_text.splitlines():
        if not line.startswith(("ATOM", "HETATM")) or len(line) < 54 or line[17:20] == "HOH":
            continue
        xyz = _pdb_coords(line)
        if xyz is None:
            continue
        lines, coords = found.setdefault((line[21], line[17:20].strip(), line[22:27]), ([], []))
        lines.append(line)
        coords.append(xyz)
    return [Residue(c, n, num, tuple(ls), tuple(xs)) for (c, n, num), (ls, xs) in found.items()]


def ligand_coords(text: str, fmt: str) -> list[Atom]:
    """Heavy-atom coordinates of the ligand's first record (empty when unreadable)."""
    if fmt in ("pdbqt", "pdb"):
        rows = [ln for ln in text.splitlines() if ln.startswith(("ATOM", "HETATM")) and len(ln) >= 54]
        return [xyz for ln in rows if (xyz := _pdb_coords(ln)) is not None and not ln[12:16].strip().startswith("H")]
    from rdkit import Chem

    mol = (
        Chem.MolFromMol2Block(text, sanitize=False, removeHs=False)
        if fmt == "mol2"
        else Chem.MolFromMolBlock(text.split("$$$$")[0], sanitize=False, removeHs=False)
    )
    if mol is None or mol.GetNumConformers() == 0:
        return []
    pos = mol.GetConformer().GetPositions()
    return [tuple(map(float, pos[a.GetIdx()])) for a in mol.GetAtoms() if a.GetAtomicNum() != 1]  # type: ignore[misc]


def _min_distance(coords: tuple[Atom, ...], ligand: list[Atom]) -> float:
    return min(math.dist(a, b) for a in coords for b in ligand)


def box_points(box: Box) -> list[Atom]:
    """The centre and the eight corners: what the crop keeps residues near when there is no ligand yet."""
    (cx, cy, cz), (sx, sy, sz) = box
    signs = [(dx, dy, dz) for dx in (-1, 1) for dy in (-1, 1) for dz in (-1, 1)]
    return [(cx, cy, cz), *((cx + dx * sx / 2, cy + dy * sy / 2, cz + dz * sz / 2) for dx, dy, dz in signs)]


def build_view(protein_pdb: str, ligand: str, fmt: str, box: Box | None = None) -> View:
    """Crop the protein to whole residues within :data:`CROP_A` of the ligand (else of the box), nearest first,
    and find contacts."""
    every = residues(protein_pdb)
    lig = ligand_coords(ligand, fmt) if ligand else []
    anchors = lig or (box_points(box) if box else [])
    n_atoms = sum(len(r.coords) for r in every)
    if not anchors:  # nothing to crop around: the start of the file, said plainly by the caller
        kept, contacts = [], []
        for res in every:
            if sum(len(r.coords) for r in kept) + len(res.coords) > MAX_PROTEIN_ATOMS:
                break
            kept.append(res)
    else:
        cx, cy, cz = (sum(a[i] for a in anchors) / len(anchors) for i in range(3))
        reach = max(math.dist((cx, cy, cz), a) for a in anchors) + CROP_A
        near = [r for r in every if any(math.dist((cx, cy, cz), a) <= reach for a in r.coords)]  # cheap pre-filter
        scored = sorted(((d, r) for r in near if (d := _min_distance(r.coords, anchors)) <= CROP_A), key=lambda x: x[0])
        kept, total = [], 0
        for _, res in scored:
            if total + len(res.coords) > MAX_PROTEIN_ATOMS:
                break
            kept.append(res)
            total += len(res.coords)
        contacts = [r for d, r in scored if d <= CONTACT_A] if lig else []
        order = {id(r): i for i, r in enumerate(every)}
        kept.sort(key=lambda r: order[id(r)])  # file order again: the cartoon follows the chain
    labels = [(r.label, tuple(sum(a[i] for a in r.coords) / len(r.coords) for i in range(3))) for r in contacts]
    return View(
        pocket_pdb="\n".join(line for r in kept for line in r.lines) + "\nEND\n",
        ligand=ligand,
        ligand_format=fmt,
        contacts=tuple(r.label for r in contacts),
        label_positions=tuple(labels),  # type: ignore[arg-type]
        n_protein_atoms=n_atoms,
        n_kept_atoms=sum(len(r.coords) for r in kept),
        n_ligand_atoms=len(lig),
        box=box,
    )


def _safe_json(value: object) -> str:
    """JSON that cannot end a <script> element or open markup, whatever the file held."""
    text = json.dumps(value)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


@st.cache_data(show_spinner=False, max_entries=8)
def _script() -> str:
    return assets.SCRIPT.read_text() if assets.installed() else ""


def view_html(view: View, surface: bool = False, height: int = 460) -> str:
    """A self-contained page: 3Dmol.js inline (no network), the data as escaped JSON, a few lines of set-up."""
    script = _script()
    if not script:
        return (
            "<p style='font:14px sans-serif'>The 3D viewer is not installed: run "
            "<code>python -m flashdock.assets</code> (scripts/bootstrap.sh does).</p>"
        )
    data = _safe_json(
        {
            "protein": view.pocket_pdb,
            "ligand": view.ligand,
            "format": view.ligand_format,
            "labels": [[name, list(pos)] for name, pos in view.label_positions],
            "surface": surface,
            "box": [list(view.box[0]), list(view.box[1])] if view.box else None,
        }
    )
    return f"""<style>html, body {{ margin: 0; overflow: hidden; }}</style>
<div id="fdv" style="width:100%;height:{height - 8}px;position:relative"></div>
<script>{script}</script>
<script>
const D = {data};
const v = $3Dmol.createViewer(document.getElementById("fdv"), {{backgroundColor: "white"}});
const p = v.addModel(D.protein, "pdb");
v.setStyle({{model: p}}, {{cartoon: {{color: "spectrum", opacity: 0.85}}}});
const l = D.ligand ? v.addModel(D.ligand, D.format) : null;
if (l) {{
  const contact = {{model: p, within: {{distance: {CONTACT_A}, sel: {{model: l}}}}, byres: true}};
  v.addStyle(contact, {{stick: {{radius: 0.12, colorscheme: "grayCarbon"}}}});
  v.setStyle({{model: l}}, {{stick: {{radius: 0.22, colorscheme: "greenCarbon"}}}});
}}
if (D.box) {{
  const [c, s] = D.box;
  v.addBox({{center: {{x: c[0], y: c[1], z: c[2]}}, dimensions: {{w: s[0], h: s[1], d: s[2]}},
    color: "magenta", wireframe: true}});
}}
for (const [name, pos] of D.labels) {{
  v.addLabel(name, {{position: {{x: pos[0], y: pos[1], z: pos[2]}}, fontSize: 11, fontColor: "black",
    backgroundColor: "white", backgroundOpacity: 0.7, inFront: true}});
}}
if (D.surface) v.addSurface($3Dmol.SurfaceType.VDW, {{opacity: 0.6, color: "white"}}, {{model: p}});
v.zoomTo(l ? {{model: l}} : {{}});
v.zoom(0.6);
v.render();
window.fdViewerReady = true;
</script>"""


def show_complex(
    protein_pdb: str, ligand: str, fmt: str, *, key: str, height: int = 460, box: Box | None = None
) -> View:
    """The complex in 3D with a surface toggle and the contact residues listed; returns what was drawn.

    ``box`` (centre, size) is drawn as a magenta wireframe; with ``ligand`` empty the view crops around it.
    """
    view = build_view(protein_pdb, ligand, fmt, box)
    surface = st.toggle("Protein surface", key=f"{key}-surface")
    if ligand and not view.n_ligand_atoms:
        st.warning("No ligand atoms could be read from this file, so the whole protein's start is shown.")
    st.iframe(view_html(view, surface, height), height=height)
    st.caption(
        f"{view.n_kept_atoms} of {view.n_protein_atoms} protein atoms shown (whole residues within {CROP_A:g} Å "
        f"of the {'ligand' if view.n_ligand_atoms else 'box'}) · {view.n_ligand_atoms} ligand heavy atoms"
        + (" · the box in magenta" if box else "")
        + " · drag to rotate, scroll to zoom"
    )
    if view.contacts:
        st.text(f"Residues within {CONTACT_A:g} Å: " + ", ".join(view.contacts))
    return view
