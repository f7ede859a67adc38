"""The base stream classes, under the import path every stream module uses.

:class:`PipedriveStream` lives in :mod:`tap_pipedrive.base_stream`, :class:`IncrementalStream`
in :mod:`tap_pipedrive.incremental`.
"""

from tap_pipedrive.base_stream import DELETED_AT, FULL_TABLE, PipedriveStream
from tap_pipedrive.incremental import IncrementalStream

__all__ = ["DELETED_AT", "FULL_TABLE", "IncrementalStream", "PipedriveStream"]
