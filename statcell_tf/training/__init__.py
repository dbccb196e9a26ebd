"""Training runtime shared by every model: the model base class `TrainableModel` (`model`),
strategy + precision + seeds (`runtime`), the run directory contract (`run_dir`), the one
training loop (`trainer`) and export (`export`)."""
