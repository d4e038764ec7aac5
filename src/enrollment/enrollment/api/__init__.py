"""The HTTP entry points of the public API (`POST /enrollments`; `GET` and `DELETE /enrollments/{contractId}`):
each request parsed, the caller identified, the answer shaped. Nothing here writes to a table."""
