"""Lambda trigger shapes (S3 notifications, EventBridge) parsed into domain models."""
