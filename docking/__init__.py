"""Docking served by the mesh: AutoDock Vina behind a ``dock`` worker, a screening CLI, benchmarks.

Layout: :mod:`docking.ligand` (SMILES/SDF → 3D → PDBQT), :mod:`docking.receptor` (PDB → PDBQT,
cached), :mod:`docking.box` (search boxes, pocket detection), :mod:`docking.engine` (one Vina run),
:mod:`docking.request` (a /dock body, validated), :mod:`docking.scoring` (COMPASS through the
Router), :mod:`docking.worker` (the worker kind), :mod:`docking.jobs` (many ligands as a job),
:mod:`docking.screen` (a library across the mesh).
"""

__version__ = "0.1.0"
