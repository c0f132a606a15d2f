"""Data preparation on Ray Data: sources → split → preprocessing fitted on train only."""
