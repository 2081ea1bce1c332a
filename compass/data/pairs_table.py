"""The descriptor training set: PDBbind's 9,299 count rows + the local FEP and PDBQT structures, one table.

Rows come from three places and end up with the same columns:

* ``pdbbind_features/``: element-pair counts as shipped (set ``train``; the CASF-2016 core is not
  among them), RDKit ligand properties where an RCSB ligand SDF exists;
* ``fep/`` and ``pdbqt_extra/``: counts computed here from the structures by the same rule
  (:mod:`compass.data.contacts`); ``pdbqt_extra`` ids that are also table rows are dropped;
* ``casf2016/`` (evaluation only, never training): counts recomputed from the pocket files, the
  serving path, or the table's own CASF rows for reference.

Protein groups are connected components over UniProt entries (a PDB id mapped to two entries joins
them), so a grouped split never puts one UniProt entry on both sides; FEP proteins join through their
``reference_pdb`` and by name; PDBQT proteins without a UniProt entry join by sequence
(:mod:`compass.data.similarity`). The table is computed once and cached as ``.npz`` (no pickle).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from compass.data.contacts import N_PAIRS, PAIR_NAMES, contact_protein_atoms, pair_counts
from compass.data.featurize import featurize_files
from compass.data.graph import ComplexRecord, FeatureSettings
from compass.data.ligand_props import (
    FEATURE_NAMES,
    FP_BITS,
    fingerprint,
    ligand_props,
    mol_from_files,
    tanimoto_max,
)
from compass.data.roots import list_records
from compass.data.similarity import protein_sequence, shared_fraction, words
from compass.data.splits import read_id_file
from compass.data.structures import read_ligand
from compass.model.descriptors import DescriptorSpec, describe, descriptor_names
from compass.settings import cache_dir, data_dir
from services.common.files import atomic_path

CUTOFFS: tuple[float, ...] = tuple(4.0 + 0.5 * i for i in range(13))  # 4.0 … 10.0 Å: pocket files reach ~10 Å
TABLE_VERSION = 3
# Geometry descriptors of the local structures (the earlier compass-lite's blocks: contact shells, Vina-like
# terms, burial, geometry-read chemistry), read from the same point cloud as serving: FeatureSettings().
GEOMETRY_SPEC = DescriptorSpec(chemistry=True)
ARRAYS = ("counts", "props", "fps", "has_fp", "geometry")
SEQUENCE_LINK = 0.5  # share of 5-residue words that makes two local proteins one group


@dataclass
class PairSet:
    """Aligned rows: records (key, pK, group, series, source) and one array per block (:data:`ARRAYS`)."""

    records: list[ComplexRecord]
    counts: np.ndarray  # float32 [n, len(CUTOFFS), 36]
    props: np.ndarray  # float64 [n, len(FEATURE_NAMES)], NaN where no RDKit molecule
    fps: np.ndarray  # uint8 [n, FP_BITS // 8]
    has_fp: np.ndarray  # bool [n]
    geometry: np.ndarray  # float64 [n, GEOMETRY_SPEC width], NaN where there is no structure (table rows)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def pK(self) -> np.ndarray:
        return np.array([r.pK for r in self.records], dtype=np.float64)

    @property
    def sources(self) -> np.ndarray:
        return np.array([r.extra["source"] for r in self.records])

    def subset(self, idx: np.ndarray | list[int]) -> PairSet:
        idx = np.asarray(idx, dtype=np.int64)
        return PairSet([self.records[i] for i in idx], *(getattr(self, a)[idx] for a in ARRAYS))

    @classmethod
    def concat(cls, parts: list[PairSet]) -> PairSet:
        records = [r for p in parts for r in p.records]
        return cls(records, *(np.concatenate([getattr(p, a) for p in parts]) for a in ARRAYS))

    @classmethod
    def empty_blocks(cls, records: list[ComplexRecord], counts: np.ndarray | None = None) -> PairSet:
        """Rows with every block missing (NaN, zeros), to be filled in."""
        n = len(records)
        return cls(
            records,
            np.zeros((n, len(CUTOFFS), N_PAIRS), dtype=np.float32) if counts is None else counts,
            np.full((n, len(FEATURE_NAMES)), np.nan),
            np.zeros((n, FP_BITS // 8), dtype=np.uint8),
            np.zeros(n, dtype=bool),
            np.full((n, len(descriptor_names(GEOMETRY_SPEC))), np.nan),
        )

    def set_ligand(self, i: int, mol: object | None) -> None:
        self.props[i] = ligand_props(mol)
        fp = fingerprint(mol)
        if fp is not None:
            self.fps[i], self.has_fp[i] = fp, True


def read_uniprot(root: Path) -> dict[str, set[str]]:
    """PDB id → UniProt entries, from ``pdbbind_features/uniprot.tsv``."""
    out: dict[str, set[str]] = {}
    with (root / "pdbbind_features" / "uniprot.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["uniprot"]:
                out.setdefault(row["pdb_id"].lower(), set()).add(row["uniprot"])
    return out


class _Groups:
    """Union-find over tokens (``u:P00734``, ``fep:thrombin``, ``row:<key>``)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def join(self, tokens: list[str]) -> None:
        roots = [self.find(t) for t in tokens]
        for r in roots[1:]:
            self.parent[self.find(r)] = self.find(roots[0])


def _structure_rows(records: list[ComplexRecord], label: str) -> PairSet:
    """Every block computed from each record's files."""
    rows = PairSet.empty_blocks(records)
    proteins: dict[str, object] = {}
    for i, rec in enumerate(tqdm(records, desc=f"featurising {label}", unit="complex", leave=False)):
        if rec.protein_path not in proteins:
            proteins[rec.protein_path] = contact_protein_atoms(Path(rec.protein_path).read_text(errors="replace"))
        ligand = read_ligand(rec.ligand_paths, rec.sdf_index)
        rows.counts[i] = pair_counts(proteins[rec.protein_path], ligand, CUTOFFS)
        rows.set_ligand(i, mol_from_files(rec.ligand_paths, rec.sdf_index))
        graph, _ = featurize_files(rec.protein_path, rec.ligand_paths, FeatureSettings(), ligand_index=rec.sdf_index)
        rows.geometry[i] = describe(graph, GEOMETRY_SPEC)
    return rows


def _table_rows(root: Path, subset: str) -> tuple[list[ComplexRecord], np.ndarray]:
    feats = root / "pdbbind_features"
    with (feats / "index.csv").open() as fh:
        rows = [r for r in csv.DictReader(fh) if r["set"] == subset]
    ids = [r["pdb_id"].lower() for r in rows]
    position = {pdb: i for i, pdb in enumerate(ids)}
    counts = np.zeros((len(ids), len(CUTOFFS), N_PAIRS), dtype=np.float32)
    for k, cutoff in enumerate(CUTOFFS):
        with (feats / "elements" / f"elements_{cutoff:.1f}.csv").open() as fh:
            for row in csv.DictReader(fh):
                i = position.get(row["pdb_id"].lower())
                if i is not None:
                    counts[i, k] = [float(row[name]) for name in PAIR_NAMES]
    records = []
    for row, pdb in zip(rows, ids, strict=True):
        sdf = feats / "ligands" / f"{pdb}.sdf"
        records.append(
            ComplexRecord(
                key=f"pdbbind/{pdb}",
                protein_path="",
                ligand_paths=[str(sdf)] if sdf.is_file() else [],
                pK=float(row["pK"]),
                group="",
                molecule=pdb,
                extra={"source": "pdbbind", "pdb_id": pdb},
            )
        )
    return records, counts


def _table_set(records: list[ComplexRecord], counts: np.ndarray) -> PairSet:
    """Table rows: counts as shipped, ligand blocks from the ligand file where one exists, no geometry."""
    rows = PairSet.empty_blocks(records, counts)
    for i, rec in enumerate(tqdm(records, desc="ligand properties", unit="ligand", leave=False)):
        if rec.ligand_paths:
            rows.set_ligand(i, mol_from_files(rec.ligand_paths))
    return rows


def _assign_groups(records: list[ComplexRecord], uniprot: dict[str, set[str]]) -> None:
    """Fill ``record.group`` (a connected component) and ``extra["uniprot"]``."""
    groups = _Groups()
    local_words: list[tuple[int, frozenset[str]]] = []
    for i, rec in enumerate(records):
        source = rec.extra["source"]
        tokens = [f"row:{rec.key}"]
        if source == "pdbbind" or source == "extra":
            entries = uniprot.get(rec.extra["pdb_id"], set())
        else:  # fep: the series' reference structure, and the protein's name across series
            entries = uniprot.get(str(rec.extra.get("reference_pdb", "")).lower(), set())
            tokens.append(f"fep:{rec.group}")
        rec.extra["uniprot"] = sorted(entries)
        tokens += [f"u:{u}" for u in sorted(entries)]
        if source != "pdbbind" and rec.protein_path:
            local_words.append((i, words(protein_sequence(rec.protein_path))))
        groups.join(tokens)
    # Local structures without a UniProt entry (and FEP proteins) join relatives by sequence.
    by_path: dict[frozenset[str], int] = {}
    for i, w in local_words:
        by_path.setdefault(w, i)
    reps = list(by_path.items())
    for a in range(len(reps)):
        for b in range(a + 1, len(reps)):
            if shared_fraction(reps[a][0], reps[b][0]) >= SEQUENCE_LINK:
                groups.join([f"row:{records[reps[a][1]].key}", f"row:{records[reps[b][1]].key}"])
    for i, w in local_words:
        groups.join([f"row:{records[i].key}", f"row:{records[by_path[w]].key}"])
    for rec in records:
        rec.group = groups.find(f"row:{rec.key}")


def _fingerprint_of(root: Path) -> str:
    """Digest of the input files' sizes and mtimes (cheap; a changed data folder rebuilds the table)."""
    h = hashlib.sha256(f"v{TABLE_VERSION}|{CUTOFFS}".encode())
    for sub in ("pdbbind_features/index.csv", "pdbbind_features/uniprot.tsv", "fep/index.csv", "pdbqt_extra/index.csv"):
        st = (root / sub).stat()
        h.update(f"{sub}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def build_training_set(root: Path | None = None) -> PairSet:
    """Every training row (never a CASF-2016 id), with groups; see the module docstring."""
    root = Path(root or data_dir())
    table, table_counts = _table_rows(root, "train")
    table_ids = {r.extra["pdb_id"] for r in table}
    _, fep, _ = list_records(root / "fep")
    for rec in fep:
        rec.key = f"fep/{rec.key}"
        rec.extra["source"] = "fep"
    _, extra, _ = list_records(root / "pdbqt_extra")
    extra = [r for r in extra if r.key not in table_ids]
    for rec in extra:
        rec.extra.update(source="extra", pdb_id=rec.key)
        rec.key = f"extra/{rec.key}"
        rec.series = ""
    data = PairSet.concat(
        [_table_set(table, table_counts), _structure_rows(fep, "fep"), _structure_rows(extra, "pdbqt_extra")]
    )
    _assign_groups(data.records, read_uniprot(root))
    return data.subset(_not_casf_complexes(data, root))


def _not_casf_complexes(data: PairSet, root: Path) -> list[int]:
    """Rows to keep: not FEP records that *are* a CASF-2016 complex.

    Two FEP reference structures are CASF-2016 ids (2qbp, 4ivd), and three FEP records put that very
    ligand in that very structure. A record whose reference is a CASF id is dropped when its ligand is
    identical (Tanimoto 1 on Morgan bits) to the CASF ligand, or when RDKit cannot tell.
    """
    casf_ids = read_id_file(root / "pdbbind" / "casf2016_core_ids.txt")
    casf_fps: dict[str, np.ndarray | None] = {}
    keep = []
    for i, rec in enumerate(data.records):
        ref = str(rec.extra.get("reference_pdb", "")).lower()
        if ref in casf_ids:
            if ref not in casf_fps:
                folder = root / "casf2016" / ref
                casf_fps[ref] = fingerprint(
                    mol_from_files([folder / f"{ref}_ligand.sdf", folder / f"{ref}_ligand.mol2"])
                )
            other = casf_fps[ref]
            if other is None or not data.has_fp[i] or tanimoto_max(data.fps[i], other[None])[0] >= 0.999:
                continue
        keep.append(i)
    return keep


def build_casf_set(root: Path | None = None, *, from_table: bool = False) -> PairSet:
    """The 285 CASF-2016 complexes: counts from the pocket files (serving path) or the table's own rows."""
    root = Path(root or data_dir())
    _, casf, _ = list_records(root / "casf2016")
    for rec in casf:
        rec.extra.update(source="casf2016", pdb_id=rec.key, uniprot=[rec.extra.get("uniprot", "")])
    if from_table:
        table, counts = _table_rows(root, "casf2016")
        by_id = {r.extra["pdb_id"]: i for i, r in enumerate(table)}
        return _table_set(casf, counts[[by_id[r.key] for r in casf]])
    return _structure_rows(casf, "casf2016")


def load_set(name: str, root: Path | None = None, cache: Path | None = None) -> PairSet:
    """``train``, ``casf`` or ``casf-table``, from the ``.npz`` cache when the data has not changed."""
    builders = {
        "train": lambda r: build_training_set(r),
        "casf": lambda r: build_casf_set(r),
        "casf-table": lambda r: build_casf_set(r, from_table=True),
    }
    if name not in builders:
        raise ValueError(f"unknown set {name!r}; one of {sorted(builders)}")
    root = Path(root or data_dir())
    path = Path(cache or cache_dir()) / f"pairs-{name}-{_fingerprint_of(root)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            records = [ComplexRecord.from_dict(d) for d in json.loads(str(z["records"]))]
            return PairSet(records, *(z[a] for a in ARRAYS))
    data = builders[name](root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            records=np.array(json.dumps([r.to_dict() for r in data.records])),
            **{a: getattr(data, a) for a in ARRAYS},
        )
    return data
