"""The HTML report of ``driftd backtest -o report.html``: one self-contained file.

``render_report(data, path)`` writes it; ``render_html(data)`` returns it. ``data`` is
the backtest's result dict (what ``--json`` writes). matplotlib draws the charts, as
inline SVG; it is the optional ``report`` extra.
"""

from monitor.report.render import render_html, render_report

__all__ = ["render_html", "render_report"]
