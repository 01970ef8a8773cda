"""The one command and read layer shared by the operator CLI and the HTTP API."""
