"""A cohort, whatever its files: problems, the labels table, pseudonyms, the choice of series, the cohort check and ingest plan, and the patient-level split."""
