"""The variant worker (kind ``variant``, capability ``variant-effect``): scoring, design, training jobs."""
