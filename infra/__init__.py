"""The hyperpod-guard CDK app (Python, aws-cdk-lib v2)."""
