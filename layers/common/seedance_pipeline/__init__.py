"""Shared code of seedance-s3-pipeline: settings, models, adapters and the submit/poll logic."""
