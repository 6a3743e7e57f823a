"""The embedded synthetic DICOM cohorts the demo and the tests run on: study A's head phantom
(:mod:`.partition`, also the external site), study B's LA-NPC cohort (:mod:`.staging`), and what
they share (:mod:`.common`)."""
