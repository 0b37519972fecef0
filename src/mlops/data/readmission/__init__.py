"""Data of the readmission use case (Diabetes 130-US hospitals 1999-2008, ``diabetic_data.csv``).

One job per module:

- ``vocabulary``: the raw file's columns, the category levels and the model's feature list;
- ``cleaning``: raw rows -> features and target (``features``, ``target``, ``clean``, ``read_raw``,
  ``load_diabetic_csv``);
- ``generator``: deterministic synthetic rows with the raw schema and a drift knob (``generate``,
  ``write``), its probability tables in ``tables.json``.
"""
