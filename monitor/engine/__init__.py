"""Engine: from decoded rows to verdicts.

``pipeline`` drives one batch through the windows (``windows``), the detectors
(``evaluate``, on the public ``detectors`` engine), the paging decisions
(``decision``) and their explanations (``explain``). ``labels/`` is the ground-truth
side; ``reference/`` builds, checks, reads and writes reference profiles. What a batch
did leaves the engine as one ``outcome.BatchOutcome``.
"""
