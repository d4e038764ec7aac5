"""Powertools Logger, Tracer and Metrics, configured from the POWERTOOLS_* environment variables."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
