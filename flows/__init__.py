"""Prefect flows, each readable as its pipeline diagram: `optimize` (load → baseline → propose →
score → decide → register) and `ab_analysis` (events → sequential decision → promote / roll back /
reallocate). Decisions live in `promptyard`; tasks take and return plain data. Imported only by
`promptyard.cli` (and by Prefect, through the entrypoints in prefect.yaml)."""

__all__: list[str] = []
