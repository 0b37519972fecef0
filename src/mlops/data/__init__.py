"""Loading, schemas, splitting and fingerprints of the data sets."""
