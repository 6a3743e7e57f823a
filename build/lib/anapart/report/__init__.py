"""What reads both studies: the reporting checklist."""
