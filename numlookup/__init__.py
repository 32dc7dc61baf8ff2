"""numlookup: a self-hosted phone number lookup server speaking the Messente Number Lookup API."""

__version__ = "0.1.0"
