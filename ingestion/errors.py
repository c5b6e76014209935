"""The warehouses' error, apart so every backend module (ingestion/warehouse.py,
ingestion/lake.py) raises the same one without importing another backend."""


class WarehouseError(RuntimeError):
    """A warehouse that cannot be reached or a table that cannot be read."""
