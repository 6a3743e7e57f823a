"""Study B, LA-NPC staging: one module per Methods step (ROI patches and CLAHE, the CNNs, radiomics, the soft-voting ensemble, Grad-CAM)."""
