"""Study A, the anatomical partition: one module per Methods step (segment, crop, classify, Grad-CAM, the external cohort)."""
