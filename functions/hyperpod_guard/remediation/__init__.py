"""Opt-in remediation: plan (pure), budgets/backoff/audit (DynamoDB), and the executor."""
