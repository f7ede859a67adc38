"""Installments of the deals read in this run, 100 deals per request (like line items)."""

from __future__ import annotations

from tap_pipedrive.streams.sales import DealBatchStream


class DealInstallmentsStream(DealBatchStream):
    name = "deal_installments"
    path = "/api/v2/deals/installments"
