"""Amanflix behaviour: the API's contract, the users' journeys, lock detection, the catalog and run hooks.

It plugs into the engine via the User protocol; it imports the engine and shared leaves, never the outputs."""
