"""An offline 3D view of a complex: atoms parsed here, drawn on a canvas by ~40 lines of inline JS.

No CDN and no library: the page must work on an air-gapped cluster. Drag to rotate, wheel to zoom.
"""

from __future__ import annotations

import json
import math

COLORS = {"C": "#909090", "N": "#3050f8", "O": "#ff0d0d", "S": "#e0c000", "P": "#ff8000", "H": "#dddddd"}
LIGAND_CARBON = "#22cc66"
MAX_PROTEIN_ATOMS = 3000


def pdb_atoms(text: str) -> list[tuple[float, float, float, str]]:
    """Heavy atoms of ATOM/HETATM records (waters skipped), as (x, y, z, element)."""
    atoms = []
    for line in text.splitlines():
        if line.startswith(("ATOM", "HETATM")) and len(line) >= 54 and line[17:20] != "HOH":
            try:
                x, y, z = float(line[30:38]), float(line[38:46]), float(line[46:54])
            except ValueError:
                continue
            element = (line[76:78].strip() or line[12:16].strip().lstrip("0123456789")[:1]).capitalize()
            if element != "H":
                atoms.append((x, y, z, element))
    return atoms[:MAX_PROTEIN_ATOMS]


def sdf_molecule(text: str) -> tuple[list[tuple[float, float, float, str]], list[tuple[int, int]]]:
    """Atoms and bonds of the first record of a V2000 SDF/MOL block (empty when unreadable)."""
    lines = text.splitlines()
    if len(lines) < 4:
        return [], []
    try:
        n_atoms, n_bonds = int(lines[3][0:3]), int(lines[3][3:6])
        atoms = [
            (float(ln[0:10]), float(ln[10:20]), float(ln[20:30]), ln[31:34].strip().capitalize())
            for ln in lines[4 : 4 + n_atoms]
        ]
        bonds = [(int(ln[0:3]) - 1, int(ln[3:6]) - 1) for ln in lines[4 + n_atoms : 4 + n_atoms + n_bonds]]
    except (ValueError, IndexError):
        return [], []
    return atoms, bonds


def complex_html(protein_pdb: str, ligand_sdf: str, height: int = 420) -> str:
    """Self-contained HTML drawing the pocket (grey-ish, small) and the ligand (green carbons, bonds)."""
    protein = pdb_atoms(protein_pdb)
    lig_atoms, bonds = sdf_molecule(ligand_sdf)
    center_src = lig_atoms or protein
    if not center_src:
        return "<p>No atoms could be read from these files.</p>"
    cx, cy, cz = (sum(a[i] for a in center_src) / len(center_src) for i in range(3))
    points = [
        [round(x - cx, 2), round(y - cy, 2), round(z - cz, 2), COLORS.get(e, "#b070ff"), 0] for x, y, z, e in protein
    ]
    points += [
        [
            round(x - cx, 2),
            round(y - cy, 2),
            round(z - cz, 2),
            LIGAND_CARBON if e == "C" else COLORS.get(e, "#b070ff"),
            1,
        ]
        for x, y, z, e in lig_atoms
    ]
    offset = len(protein)
    edges = [[a + offset, b + offset] for a, b in bonds]
    radius = max(math.sqrt(p[0] ** 2 + p[1] ** 2 + p[2] ** 2) for p in points) or 1.0
    data = json.dumps({"p": points, "e": edges, "r": radius})
    return f"""<div style="font:12px sans-serif;color:#666">{len(protein)} pocket atoms · {len(lig_atoms)} ligand atoms
· drag to rotate, wheel to zoom</div>
<canvas id="fdview" width="640" height="{height - 30}" style="width:100%;max-width:640px;background:#fff;
border:1px solid #ddd;border-radius:6px;cursor:grab"></canvas>
<script>
const D={data};const c=document.getElementById('fdview'),g=c.getContext('2d');
let ax=0.4,ay=0.6,zoom=1,drag=null;
function draw(){{const W=c.width,H=c.height,s=zoom*Math.min(W,H)/(2.2*D.r);
const ca=Math.cos(ax),sa=Math.sin(ax),cb=Math.cos(ay),sb=Math.sin(ay);
const q=D.p.map(p=>{{const x=p[0]*cb+p[2]*sb,z0=-p[0]*sb+p[2]*cb,y=p[1]*ca-z0*sa,z=p[1]*sa+z0*ca;
return [W/2+x*s,H/2-y*s,z,p[3],p[4]];}});
g.clearRect(0,0,W,H);g.lineWidth=3;g.strokeStyle='#22aa55';
for(const [a,b] of D.e){{g.beginPath();g.moveTo(q[a][0],q[a][1]);g.lineTo(q[b][0],q[b][1]);g.stroke();}}
const order=q.map((v,i)=>i).sort((i,j)=>q[i][2]-q[j][2]);
for(const i of order){{const v=q[i];g.globalAlpha=v[4]?1:0.55;g.fillStyle=v[3];g.beginPath();
g.arc(v[0],v[1],(v[4]?4:2.2)*Math.max(0.6,zoom),0,6.283);g.fill();}}g.globalAlpha=1;}}
c.onmousedown=e=>{{drag=[e.clientX,e.clientY];c.style.cursor='grabbing';}};
window.onmouseup=()=>{{drag=null;c.style.cursor='grab';}};
window.onmousemove=e=>{{if(!drag)return;ay+=(e.clientX-drag[0])*0.01;ax+=(e.clientY-drag[1])*0.01;
drag=[e.clientX,e.clientY];draw();}};
c.onwheel=e=>{{e.preventDefault();zoom*=e.deltaY<0?1.1:0.9;draw();}};
draw();
</script>"""
