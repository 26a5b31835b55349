"""Ground truth recorded against predictions, and the model quality it reveals over time."""
