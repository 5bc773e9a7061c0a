"""The predict Lambda function: SQS records → prediction-run plans and chunks."""
