"""What the pipeline does: submit, poll, deliver. Takes and returns models; sees adapters only through ports."""
