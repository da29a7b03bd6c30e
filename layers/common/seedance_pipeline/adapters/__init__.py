"""The outside world behind the ports: DynamoDB, S3, the provider over HTTP, Secrets Manager, EventBridge."""
