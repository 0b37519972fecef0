"""Gates, promotion policy and the append-only audit log."""
