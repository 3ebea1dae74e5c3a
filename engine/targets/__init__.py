"""Website targets and metric switches: the model, the targets file and the metric state."""
