"""The train Lambda function: SQS FIFO records → training jobs."""
