"""The HTTP entry points of the public API (`POST /enrollments`; `GET` and `DELETE /enrollments/{contractId}`):
each request parsed, the caller identified, the answer shaped. Tables are read and written through the
domain and `enrollment.store`, never from here."""
