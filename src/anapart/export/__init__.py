"""Models that leave the study: a verified model package, prediction on new patients, evaluation
at another site (the ``anapart`` console script).

- ``archive``: the zip, its sha256 manifest and every refusal (tampered, missing, foreign, too new)
- ``build``: a package from the workflow's outputs (rule ``package``); ``card``: its MODEL_CARD.md
- ``predict``: the workflow's own preflight, ingest, segmentation, crops and classifiers on a new cohort,
  and the console script ``anapart verify | predict | evaluate``
- ``site_eval``: the workflow's own metrics on another site's labels

Above study A (it packages study A's models and runs its code paths); nothing imports it.
"""
