"""The command-line layer: the only place that wires hierseg, data_prep and ensembles together."""
