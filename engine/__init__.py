"""The domain of the data engine: videos, frames, masks, masklets, and the decisions made on them.

Nothing here talks to a database, an object store or the network directly: those come in
through the small interfaces in :mod:`engine.ports`, implemented in :mod:`storage`.
"""
