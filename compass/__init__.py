"""COMPASS: protein–ligand binding affinity (pK) from a bound complex.

``compass.data`` turns structures into point clouds, ``compass.model`` holds the ViSNet model,
compass-lite and the checkpoint format, ``compass.train`` trains them from experiment plans.
"""

__version__ = "0.1.0"
