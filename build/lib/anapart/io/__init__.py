"""File formats: atomic writes, logs, figures, DICOM and NIfTI reading and writing, the slice store. Imports nothing else of anapart."""
