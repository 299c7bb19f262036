"""The edges where the data engine keeps things: the catalog database, the object store, exports."""
