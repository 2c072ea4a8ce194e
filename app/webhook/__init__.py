"""Webhooks: an outbox written with the job's state change, signed delivery with retries."""
