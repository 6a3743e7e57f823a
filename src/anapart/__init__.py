"""anapart: anatomical-partition deep learning for nasopharyngeal MRI.

The package holds all logic; the Snakemake scripts under ``workflow/scripts`` are thin glue.
"""

__version__ = "0.1.0"

CLASSES = ("NPC", "LH", "lymphoma", "chordoma", "craniopharyngioma", "normal")
"""The paper's six slice classes, in the order used for probability columns."""
