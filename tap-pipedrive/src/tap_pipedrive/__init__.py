"""Singer tap for Pipedrive CRM."""
