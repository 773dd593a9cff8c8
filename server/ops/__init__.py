"""What an operator runs against a deployment: `triad check`, `triad keys`, `triad prune`."""
