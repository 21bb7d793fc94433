"""Hosted consent capture with double opt-in: tenant admins publish forms (`admin.py`), people
consent on a public page (`public.py`), proven by a one-time code (`verify.codes`)."""
