"""The COMPASS worker: inference with micro-batching, datasets, training jobs and models over HTTP.

Run it with ``python -m compass.service.worker --model compass|compass-lite``; in-process (tests),
build :class:`compass.service.worker.CompassModel`. Nothing is re-exported here, so
``python -m compass.service.worker`` does not import the module twice.
"""
