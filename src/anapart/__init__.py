"""anapart: anatomical-partition deep learning for nasopharyngeal MRI.

The package holds all logic; the Snakemake scripts under ``workflow/scripts`` are thin glue.
Its layers, bottom to top (a module imports only from its own subpackage or from a layer below;
``tests/test_layers.py`` checks it):

- ``io``: files, DICOM and NIfTI reading and writing, the slice store (imports nothing else of anapart)
- ``runtime``: the warm worker (standard library only)
- ``cohort``: problems, labels, pseudonyms, series choice, the cohort check and ingest plan, the split
- ``synthetic``: the embedded phantom cohorts (DICOM written through ``io``)
- ``learn``: the torch stack both studies share: the training loop, weights, the crop data path, Grad-CAM
- ``metrics``: numpy/scipy scores and statistics: evaluation, calibration, CAM scores, tests
- ``partition``: study A, one module per Methods step; ``staging``: study B, likewise (never each other)
- ``report``: what reads both studies (the reporting checklist); ``export``: models that leave the study
  (the model package, ``anapart predict`` and ``anapart evaluate``; study A's code paths)
"""

__version__ = "0.1.0"

CLASSES = ("NPC", "LH", "lymphoma", "chordoma", "craniopharyngioma", "normal")
"""The paper's six slice classes, in the order used for probability columns."""
