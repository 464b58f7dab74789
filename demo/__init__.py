"""The demo: the retraining loop end to end on the embedded default (`make demo`)."""
