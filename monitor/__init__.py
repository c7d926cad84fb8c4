"""The driftd daemon: sources, decoding, segmenting, windows, decisions and exports."""
