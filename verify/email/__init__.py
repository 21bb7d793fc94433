"""Email through SendGrid: sending (`sending.py`, the one module that calls SendGrid), the
suppression list every send checks (`suppressions.py`), the signed Event Webhook's events
(`events.py`), the pages' selectors, exports and views, and what verify registers with tenants
(`registrations.py`)."""
