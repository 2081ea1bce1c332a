"""Independent reference for the SpliceAI port: Keras 3 loads the wheel's .h5 files itself and predicts.

Run by ``test_splice_reference.py`` with an interpreter that has Keras 3 (any backend), never
with the project's own: ``python keras_reference.py MODELS_DIR INPUT.npy OUTPUT.npy``.
INPUT is a one-hot batch ``[B, L + 10000, 4]`` (Keras layout); OUTPUT gets the ensemble mean
``[B, L, 3]``, exactly as SpliceAI's README computes it.
"""

import sys
from pathlib import Path

import keras
import numpy as np


def main() -> None:
    models_dir, source, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    x = np.load(source)
    models = [keras.models.load_model(models_dir / f"spliceai{i}.h5", compile=False) for i in range(1, 6)]
    y = np.mean([m.predict(x, verbose=0) for m in models], axis=0)
    np.save(target, y.astype(np.float32))


if __name__ == "__main__":
    main()
