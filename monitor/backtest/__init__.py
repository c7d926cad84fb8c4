"""``driftd backtest``: recorded events and labels through the daemon's own engine.

``run.run_backtest`` replays the files (``inputs``) with ``monitor.wiring.build_daemon``
as a dry run; ``collector.BacktestCollector`` keeps what each batch did; ``result``
holds it as frozen data with its JSON; ``table`` prints it; ``progress`` shows how far
it is. The command line is ``monitor.cli_backtest``; the page is docs/backtest.md.
"""
