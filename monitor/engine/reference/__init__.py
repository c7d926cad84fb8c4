"""Reference profiles from training data: what ``driftd reference build`` runs.

``build`` profiles a training file (``build_reference``); ``training_data`` reads CSV,
Parquet and JSON Lines into feature, prediction and label columns; ``column_values``
turns a column into profile input (numeric or categorical, the way the decoder reads
events); ``checks`` warns about columns that drift by construction and references too
small for tight thresholds; ``profile_file`` loads and writes the profile JSON;
``segment_counts`` records the events per segment;
``describe`` describes a profile for people (``reference show``), ``compare`` scores two
profiles against each other (``reference diff``) and ``merge`` adds up profiles of shards
(``reference merge``, on ``detectors.merge``). The command line itself is
``monitor.cli_reference``.
"""
